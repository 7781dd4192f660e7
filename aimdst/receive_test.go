package aimdst

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// testNode is a destination node with one volume "vol" in a temp folder.
type testNode struct {
	cfg     Config
	n       *Node
	volPath string
}

func newTestNode(t *testing.T, mod func(*Config)) *testNode {
	t.Helper()
	root := t.TempDir()
	tn := &testNode{volPath: filepath.Join(root, "vol.img")}
	if err := os.WriteFile(tn.volPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dstID, srcID, _ := testkit.Identities()
	tn.cfg = Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
		Volumes: []VolumeConfig{{Name: "vol", Path: tn.volPath}}, Logger: discardLog(),
		RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond,
		Identity: dstID, Pins: testkit.Pins(srcID)}
	if mod != nil {
		mod(&tn.cfg)
	}
	n, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn.n = n
	return tn
}

// srcAuth is what a test sender presents to a test node, and trusts.
func srcAuth() push.Auth {
	dstID, srcID, _ := testkit.Identities()
	return push.Auth{Identity: srcID, Peers: testkit.Pins(dstID)}
}

// serve runs the node on loopback until the test ends and returns its push
// address.
func (tn *testNode) serve(t *testing.T) string {
	t.Helper()
	if tn.n.cfg.Identity == nil { // a config made by the test itself
		dstID, srcID, _ := testkit.Identities()
		tn.n.cfg.Identity, tn.n.cfg.Pins = dstID, testkit.Pins(srcID)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tn.n.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// destaged reports whether volume has destaged its first files files.
func destaged(n *Node, files int) func() bool {
	return func() bool {
		st := n.Status()
		return st.Volumes[0].DestagedFile == uint64(files) && st.Volumes[0].FilesWaiting == 0
	}
}

func smallJournal(t *testing.T, seed uint64, markers map[int]journal.Record) generated {
	return writeJournal(t, t.TempDir(), "vol", 64<<10, randomOps(rand.New(rand.NewPCG(seed, 1)), 64<<10, 30, markers))
}

// TestPushShuffledDuplicated pushes every file over the real protocol, in a
// shuffled order, each up to three times, from concurrent pushers.
func TestPushShuffledDuplicated(t *testing.T) {
	g := smallJournal(t, 1, map[int]journal.Record{12: {Kind: journal.KindSnapshot, Label: "mid"}})
	tn := newTestNode(t, nil)
	addr := tn.serve(t)
	ctx := context.Background()
	c, err := push.Dial(ctx, addr, push.Hello{Node: "src"}, srcAuth())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var order []string
	for range 3 {
		order = append(order, g.files...)
	}
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var wg sync.WaitGroup
	errs := make(chan error, len(order))
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(order); i += 4 {
				o, b := offerOf(t, "vol", order[i])
				err := c.Push(ctx, o, bytes.NewReader(b))
				if err != nil && !errors.Is(err, push.ErrDuplicate) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "destage", destaged(tn.n, len(g.files)))
	if got := testkit.ReadFile(t, tn.volPath); !bytes.Equal(got, g.final) {
		t.Fatalf("image: %s", testkit.FirstDiff(g.final, got))
	}
	if got := testkit.ReadFile(t, SnapshotPath(tn.cfg.SnapshotDir, "vol", "mid")); !bytes.Equal(got, g.snaps["mid"]) {
		t.Fatalf("snapshot: %s", testkit.FirstDiff(g.snaps["mid"], got))
	}
	// A resend of a destaged file is a duplicate: acked, not applied.
	o, b := offerOf(t, "vol", g.files[0])
	if err := c.Push(ctx, o, bytes.NewReader(b)); err != nil {
		t.Fatalf("resend of a destaged file: %v", err)
	}
}

func TestAcceptRefuses(t *testing.T) {
	g := smallJournal(t, 2, nil)
	other := writeJournal(t, t.TempDir(), "other", 4096, randomOps(rand.New(rand.NewPCG(3, 3)), 4096, 3, nil))
	tn := newTestNode(t, func(c *Config) { c.MaxFileSize = 1 << 20 })
	good, goodBytes := offerOf(t, "vol", g.files[0])
	foreign, _ := offerOf(t, "vol", other.files[0])
	cases := []struct {
		name string
		o    push.Offer
		data []byte // sent before Commit; nil: Accept must refuse
		want error
	}{
		{"bad volume name", push.Offer{Volume: "a/b", Name: good.Name, Seq: good.Seq, Size: good.Size}, nil, push.ErrBadOffer},
		{"unknown volume", push.Offer{Volume: "nope", Name: good.Name, Seq: good.Seq, Size: good.Size}, nil, push.ErrUnknownVolume},
		{"bad file name", push.Offer{Volume: "vol", Name: "x.aimj", Seq: good.Seq, Size: good.Size}, nil, push.ErrBadOffer},
		{"name and sequence disagree", push.Offer{Volume: "vol", Name: good.Name, Seq: good.Seq + 1, Size: good.Size}, nil, push.ErrBadOffer},
		{"file too large", push.Offer{Volume: "vol", Name: good.Name, Seq: good.Seq, Size: 2 << 20}, nil, push.ErrBadOffer},
		{"file too small", push.Offer{Volume: "vol", Name: good.Name, Seq: good.Seq, Size: 10}, nil, push.ErrBadOffer},
		{"checksum", push.Offer{Volume: "vol", Name: good.Name, Seq: good.Seq, Size: good.Size}, goodBytes, push.ErrChecksum},
		{"other volume's file", foreign, testkit.ReadFile(t, other.files[0]), push.ErrBadOffer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tn.n.Accept(context.Background(), push.Hello{Node: "src"}, tc.o)
			if tc.data != nil {
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				if _, err = s.Write(tc.data); err == nil {
					err = s.Commit(context.Background())
				} else {
					s.Abort() // as the push server does after a failed Write
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if st := tn.n.Status(); st.BufferBytes != 0 {
		t.Fatalf("refused files left %d bytes in the buffer", st.BufferBytes)
	}
}

// TestResume sends part of a file, loses the connection, and resumes.
func TestResume(t *testing.T) {
	g := smallJournal(t, 4, nil)
	tn := newTestNode(t, nil)
	if err := deliver(t, tn.n, "vol", g.files[0], 1000); err != nil {
		t.Fatal(err)
	}
	if st := tn.n.Status().Volumes[0]; st.BufferBytes != 1000 || st.FilesWaiting != 0 {
		t.Fatalf("after a partial transfer: %+v", st)
	}
	// A restart keeps the partial file.
	n, err := NewNode(tn.cfg)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offerOf(t, "vol", g.files[0])
	s, err := n.Accept(context.Background(), push.Hello{Node: "src"}, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset() != 1000 {
		t.Fatalf("resume offset %d, want 1000", s.Offset())
	}
	s.Abort()
	if err := deliver(t, n, "vol", g.files[0], 1<<30); err != nil {
		t.Fatal(err)
	}
	if st := n.Status().Volumes[0]; st.FilesWaiting != 1 || st.BufferBytes != o.Size {
		t.Fatalf("after resume: %+v", st)
	}
}

// TestBufferFull refuses files beyond the limit, except the one destage
// waits for, and reports it.
func TestBufferFull(t *testing.T) {
	g := smallJournal(t, 5, nil)
	if len(g.files) < 4 {
		t.Fatalf("need 4 files, have %d", len(g.files))
	}
	o2, _ := offerOf(t, "vol", g.files[1])
	tn := newTestNode(t, func(c *Config) { c.BufferLimit = o2.Size + 10 })
	if err := deliver(t, tn.n, "vol", g.files[1], 1<<30); err != nil {
		t.Fatalf("first file into an empty buffer: %v", err)
	}
	if err := deliver(t, tn.n, "vol", g.files[2], 1<<30); !errors.Is(err, push.ErrBufferFull) {
		t.Fatalf("file over the limit: got %v, want ErrBufferFull", err)
	}
	st := tn.n.Status()
	if !st.BufferFull || st.Volumes[0].RefusedFull != 1 {
		t.Fatalf("status does not say full: %+v", st)
	}
	// File 1 fills the gap destage waits for: taken although over the limit.
	if err := deliver(t, tn.n, "vol", g.files[0], 1<<30); err != nil {
		t.Fatalf("the next file destage needs: %v", err)
	}
	if err := destageAll(tn.n, "vol"); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, tn.n, "vol", g.files[2], 1<<30); err != nil {
		t.Fatalf("after destage made room: %v", err)
	}
}

// TestDuplicateAfterFailedFolderSync: a file whose commit failed at the
// folder sync (renamed, but the rename perhaps not durable) is acked as a
// duplicate on the resend only once the folder sync has succeeded.
func TestDuplicateAfterFailedFolderSync(t *testing.T) {
	tn := newTestNode(t, nil)
	g := writeJournal(t, t.TempDir(), "vol", 64<<10, randomOps(rand.New(rand.NewPCG(1, 2)), 64<<10, 10, nil))
	var mu sync.Mutex
	failDir, dirSyncs := true, 0
	t.Cleanup(durable.SetSyncHook(func(f *os.File, folder bool) error {
		if folder {
			mu.Lock()
			defer mu.Unlock()
			if failDir {
				failDir = false
				return errors.New("injected folder fsync failure")
			}
			dirSyncs++
		}
		return f.Sync()
	}))
	if err := deliver(t, tn.n, "vol", g.files[0], len(testkit.ReadFile(t, g.files[0]))); err == nil {
		t.Fatal("commit with a failing folder sync acked")
	}
	if err := deliver(t, tn.n, "vol", g.files[0], len(testkit.ReadFile(t, g.files[0]))); err != nil {
		t.Fatalf("resend: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if dirSyncs == 0 {
		t.Fatal("resend acked as a duplicate without the folder sync that failed at commit")
	}
}
