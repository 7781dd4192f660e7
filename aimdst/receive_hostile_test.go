package aimdst

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPartGrownByFailedWrite: on a full disk a write can fail (ENOSPC, n=0)
// after the kernel already extended the .part file (tmpfs does: a 64 KiB
// write with 36 KiB free leaves the file 36 KiB longer). Accept then resumes
// from the file's real size, so the buffer count must follow the file, not
// the bytes Write reported: once the file is received and destaged the
// volume holds 0 bytes, never a negative count. Found by `aimwan sim chaos
// --kinds dst-disk-full --volume-size 16MiB --faults 6 --seed 11` (dst
// volume a at -65536 buffer bytes with nothing waiting).
func TestPartGrownByFailedWrite(t *testing.T) {
	g := smallJournal(t, 5, nil)
	tn := newTestNode(t, nil)
	if err := deliver(t, tn.n, "vol", g.files[0], 1000); err != nil {
		t.Fatal(err)
	}
	// What a write that failed with ENOSPC left in the file: 500 more bytes
	// (here the right ones), not counted by the node.
	_, b := offerOf(t, "vol", g.files[0])
	part := filepath.Join(tn.cfg.BufferDir, "vol", filepath.Base(g.files[0])+partExt)
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b[1000:1500]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := deliver(t, tn.n, "vol", g.files[0], 1<<30); err != nil {
		t.Fatal(err)
	}
	if st := tn.n.Status().Volumes[0]; st.BufferBytes != int64(len(b)) {
		t.Errorf("received file of %d bytes held, buffer count %d", len(b), st.BufferBytes)
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if st := tn.n.Status(); st.BufferBytes != 0 || st.Volumes[0].BufferBytes != 0 {
		t.Errorf("after destage: node buffer %d bytes, volume %d bytes, want 0", st.BufferBytes, st.Volumes[0].BufferBytes)
	}
}
