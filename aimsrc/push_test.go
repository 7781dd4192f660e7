package aimsrc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// writeSome writes count 32 KiB blocks of distinct content through NBD and
// flushes.
func writeSome(t *testing.T, n *Node, volume string, count int, salt byte) {
	t.Helper()
	cl := mustDialNBD(t, n.NBDAddr().String(), volume)
	for i := range count {
		b := bytes.Repeat([]byte{byte(i) ^ salt, salt}, 16<<10)
		if err := cl.write(b, int64(i%60)*64<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.flush(); err != nil {
		t.Fatal(err)
	}
}

// TestPushRetries: the destination refuses files (buffer full, unavailable,
// internal error); each is retried until acked and only then deleted; the
// destination's replay equals the image.
func TestPushRetries(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	cfg := testConfig(t, dir, vc)
	cfg.FileSize = 128 << 10
	cfg.FileAge = 50 * time.Millisecond
	jdir := filepath.Join(cfg.Buffer, "v1")
	var mu sync.Mutex
	var violations []string
	refusals := map[uint64][]error{
		2: {push.ErrBufferFull, push.ErrUnavailable},
		3: {errors.New("disk on fire")},
		5: {push.ErrBufferFull, push.ErrBufferFull, push.ErrBufferFull},
	}
	dst := newFakeDst()
	dst.fail = func(o push.Offer, attempt int) error {
		if _, err := os.Stat(filepath.Join(jdir, o.Name)); err != nil {
			mu.Lock()
			violations = append(violations, fmt.Sprintf("%s offered but not on disk: %v", o.Name, err))
			mu.Unlock()
		}
		if errs := refusals[o.Seq]; attempt <= len(errs) {
			return errs[attempt-1]
		}
		return nil
	}
	cfg.Push = serveFakeDst(t, dst)
	n, _ := runNode(t, cfg)
	writeSome(t, n, "v1", 60, 1)
	testkit.WaitFor(t, 20*time.Second, "files pushed", func() bool {
		st := n.Status().Volumes[0]
		return st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for _, v := range violations {
		t.Error(v)
	}
	dst.mu.Lock()
	for seq, errs := range refusals {
		if got := dst.tries["v1/"+journal.FileName(seq)]; got != len(errs)+1 {
			t.Errorf("file %d offered %d times, want %d", seq, got, len(errs)+1)
		}
	}
	dst.mu.Unlock()
	dst.checkReplica(t, "v1", vc.Path, size)
	if seqs, _ := journal.ListSealed(jdir); len(seqs) != 0 {
		t.Errorf("%d files left after their acks", len(seqs))
	}
}

// TestPushConnectionCut: the push server goes away mid-stream (connections
// cut, then refused) and comes back on the same address; pushing resumes
// and nothing is lost or deleted early.
func TestPushConnectionCut(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	cfg := testConfig(t, dir, vc)
	cfg.FileSize = 64 << 10
	cfg.FileAge = 50 * time.Millisecond
	dst := newFakeDst()
	block := make(chan struct{})
	var back atomic.Bool // the server came back: file 3 may be acked
	dst.fail = func(o push.Offer, attempt int) error {
		if o.Name == journal.FileName(3) && !back.Load() {
			if attempt == 1 {
				<-block // held until the server is stopped under it
			}
			return push.ErrUnavailable // never acked before the restart, however the retries race the stop
		}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := startFakeDst(t, dst, ln)
	cfg.Push = addr
	n, _ := runNode(t, cfg)
	writeSome(t, n, "v1", 60, 2)
	testkit.WaitFor(t, 10*time.Second, "file 3 offered", func() bool {
		dst.mu.Lock()
		defer dst.mu.Unlock()
		return dst.tries["v1/"+journal.FileName(3)] > 0
	})
	close(block)
	stop() // cuts the connection
	testkit.WaitFor(t, 10*time.Second, "push errors reported", func() bool {
		return n.Status().Volumes[0].LastPushError != ""
	})
	if n.Status().Volumes[0].FilesWaiting == 0 {
		t.Fatal("all files gone while the destination was down")
	}
	back.Store(true)
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	startFakeDst(t, dst, ln2)
	testkit.WaitFor(t, 20*time.Second, "files pushed after reconnect", func() bool {
		st := n.Status().Volumes[0]
		return st.FilesWaiting == 0 && st.SrcDataBytes == 0
	})
	dst.checkReplica(t, "v1", vc.Path, size)
}

// TestPushCorruptFile: a sealed file corrupted on disk is reported, kept and
// never pushed; the other files push.
func TestPushCorruptFile(t *testing.T) {
	dir := t.TempDir()
	vc := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 4 << 20}
	cfg := testConfig(t, dir, vc)
	cfg.FileSize = 128 << 10
	n, stop := runNode(t, cfg)
	writeSome(t, n, "v1", 20, 3)
	stop()
	bad := filepath.Join(cfg.Buffer, "v1", journal.FileName(2))
	b := testkit.ReadFile(t, bad)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := newFakeDst()
	cfg.Push = serveFakeDst(t, dst)
	n2, _ := runNode(t, cfg)
	testkit.WaitFor(t, 20*time.Second, "all but the corrupt file pushed", func() bool {
		st := n2.Status().Volumes[0]
		return st.FilesWaiting == 1 && len(st.BrokenFiles) == 1
	})
	st := n2.Status().Volumes[0]
	if !strings.Contains(st.BrokenFiles[0], journal.FileName(2)) {
		t.Errorf("broken files %q, want %s", st.BrokenFiles, journal.FileName(2))
	}
	if _, err := os.Stat(bad); err != nil {
		t.Errorf("corrupt file removed: %v", err)
	}
	for _, name := range dst.names("v1") {
		if name == journal.FileName(2) {
			t.Error("corrupt file pushed")
		}
	}
}
