package aimsrc

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/push"
)

// TestPauseResume: a paused volume journals its writes but pushes nothing,
// the other volume goes on; the pause holds across a restart; a pause of
// the whole destination stops both and a resume of one volume is refused
// while it stands; the resume pushes everything kept, in order.
func TestPauseResume(t *testing.T) {
	const size = 4 << 20
	dir := t.TempDir()
	v1 := VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size}
	v2 := VolumeConfig{Name: "v2", Path: filepath.Join(dir, "v2.img"), Size: size}
	cfg := testConfig(t, dir, v1, v2)
	cfg.FileSize = 128 << 10
	cfg.FileAge = 50 * time.Millisecond
	dst := newFakeDst()
	cfg.Push = serveFakeDst(t, dst)
	n, stop := runNode(t, cfg)
	if _, err := n.Pause("nope"); !errors.Is(err, ErrNoSuchVolume) {
		t.Fatalf("pause of an unknown volume: %v", err)
	}
	if st, err := n.Pause("v1"); err != nil || st.All || !slices.Equal(st.Volumes, []string{"v1"}) {
		t.Fatalf("pause v1: %+v, %v", st, err)
	}
	writeSome(t, n, "v1", 40, 1)
	writeSome(t, n, "v2", 40, 2)
	drained := func(n *Node, vol string) func() bool {
		return func() bool {
			for _, v := range n.Status().Volumes {
				if v.Name == vol {
					return v.FilesWaiting == 0 && v.SrcDataBytes == 0
				}
			}
			return false
		}
	}
	testkit.WaitFor(t, 20*time.Second, "v2 pushed", drained(n, "v2"))
	testkit.WaitFor(t, 10*time.Second, "v1's files sealed", func() bool { return n.Status().Volumes[0].FilesWaiting > 0 })
	if got := dst.names("v1"); len(got) > 0 {
		t.Fatalf("paused v1 pushed %v", got)
	}
	if st := n.Status(); st.Volumes[0].PausedBy != PausedByVolume || st.Volumes[1].PausedBy != "" || !slices.Equal(st.Paused.Volumes, []string{"v1"}) {
		t.Fatalf("status: %+v / %+v / %+v", st.Volumes[0].PausedBy, st.Volumes[1].PausedBy, st.Paused)
	}
	stop()

	n, stop = runNode(t, cfg) // the pause is durable
	if by := n.Status().Volumes[0].PausedBy; by != PausedByVolume {
		t.Fatalf("after a restart v1 is paused by %q", by)
	}
	writeSome(t, n, "v2", 10, 3) // once v2's are pushed, v1's pusher had its chance too
	testkit.WaitFor(t, 20*time.Second, "v2 pushed after the restart", drained(n, "v2"))
	if got := dst.names("v1"); len(got) > 0 {
		t.Fatalf("paused v1 pushed %v after a restart", got)
	}
	if st, err := n.Pause(""); err != nil || !st.All {
		t.Fatalf("pause all: %+v, %v", st, err)
	}
	if _, err := n.Resume("v1"); !errors.Is(err, ErrPausedByDestination) || !errors.Is(err, ErrBadRequest) {
		t.Fatalf("resume v1 under a destination pause: %v", err)
	}
	writeSome(t, n, "v2", 10, 4)
	testkit.WaitFor(t, 10*time.Second, "v2's files sealed", func() bool { return n.Status().Volumes[1].FilesWaiting > 0 })
	if by := n.Status().Volumes[1].PausedBy; by != PausedByDestination {
		t.Fatalf("v2 paused by %q under a destination pause", by)
	}
	if st, err := n.Resume(""); err != nil || st.All || len(st.Volumes) != 0 {
		t.Fatalf("resume all: %+v, %v", st, err)
	}
	testkit.WaitFor(t, 20*time.Second, "v1 pushed after the resume", drained(n, "v1"))
	testkit.WaitFor(t, 20*time.Second, "v2 pushed after the resume", drained(n, "v2"))
	stop()
	dst.checkReplica(t, "v1", v1.Path, size)
	dst.checkReplica(t, "v2", v2.Path, size)
	b, err := os.ReadFile(filepath.Join(cfg.Buffer, PausedFile))
	if err != nil || !strings.Contains(string(b), `"all":false`) {
		t.Fatalf("pause file after the resume: %q, %v", b, err)
	}
}

// TestPauseFileDamaged: a damaged pause file stops the node with an error
// naming it (it never resumes a volume on its own).
func TestPauseFileDamaged(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	if err := os.MkdirAll(cfg.Buffer, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Buffer, PausedFile), []byte(`{"all":tr`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewNode(cfg)
	if err == nil || !strings.Contains(err.Error(), PausedFile) {
		t.Fatalf("NewNode with a damaged pause file: %v", err)
	}
}

// TestLinkState: status shows the link to the next hop up, then down
// (since when, and why) soon after the next hop goes away while nothing is
// pushed, and up again when it is back.
func TestLinkState(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: 1 << 20})
	dst := newFakeDst()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stopDst := startFakeDst(t, dst, ln)
	cfg.Push = addr
	n, _ := runNode(t, cfg)
	testkit.WaitFor(t, 10*time.Second, "link up", func() bool { return n.Status().Link.State == push.LinkUp })
	stopDst()
	var l push.LinkState
	testkit.WaitFor(t, 10*time.Second, "link down", func() bool { l = n.Status().Link; return l.State == push.LinkDown })
	if l.Error == "" || l.Since.IsZero() {
		t.Fatalf("link down without a reason or a time: %+v", l)
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	startFakeDst(t, dst, ln2)
	testkit.WaitFor(t, 10*time.Second, "link up again", func() bool { return n.Status().Link.State == push.LinkUp })
}
