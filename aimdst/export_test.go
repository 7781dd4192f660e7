package aimdst

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aimwan/aimwan/internal/testkit"
)

// TestServeSnapshotNBD exports a snapshot and reads it back with nbdcopy and
// qemu-img, and checks that writes are refused.
func TestServeSnapshotNBD(t *testing.T) {
	for _, bin := range []string{"nbdcopy", "qemu-img", "qemu-io"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt: libnbd-bin, qemu-utils)", bin)
		}
	}
	dir := t.TempDir()
	want := bytes.Repeat([]byte("snapshot"), 128<<10) // 1 MiB
	if err := os.MkdirAll(filepath.Join(dir, "vol"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(SnapshotPath(dir, "vol", "s1"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeSnapshot(ctx, ln, dir, "vol/s1", "", discardLog()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeSnapshot: %v", err)
		}
	}()
	uri := "nbd://" + ln.Addr().String() + "/s1"
	out := filepath.Join(dir, "copy.img")
	if b, err := exec.Command("nbdcopy", uri, out).CombinedOutput(); err != nil {
		t.Fatalf("nbdcopy: %v: %s", err, b)
	}
	if got := testkit.ReadFile(t, out); !bytes.Equal(got, want) {
		t.Fatalf("nbdcopy read: %s", testkit.FirstDiff(want, got))
	}
	out2 := filepath.Join(dir, "copy2.img")
	if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out2).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, b)
	}
	if got := testkit.ReadFile(t, out2); !bytes.Equal(got, want) {
		t.Fatalf("qemu-img read: %s", testkit.FirstDiff(want, got))
	}
	if b, err := exec.Command("qemu-io", "-f", "raw", "-c", "write 0 4096", uri).CombinedOutput(); err == nil && !bytes.Contains(b, []byte("ermission")) && !bytes.Contains(b, []byte("read-only")) && !bytes.Contains(b, []byte("read only")) {
		t.Fatalf("write to the snapshot export was not refused: %s", b)
	}
	if got := testkit.ReadFile(t, SnapshotPath(dir, "vol", "s1")); !bytes.Equal(got, want) {
		t.Fatal("snapshot changed")
	}
}

func TestParseSnapshotName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"vol/s1", true}, {"vol", false}, {"vol/", false}, {"/s1", false}, {"a/b/c", false}, {"v.x/s", false}} {
		_, _, err := ParseSnapshotName(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseSnapshotName(%q): err %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
