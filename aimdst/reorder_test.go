package aimdst

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aimwan/aimwan/internal/durable"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
)

// dice turns fuzz input into decisions; past its end every decision is 0.
type dice struct {
	b []byte
	i int
}

func (d *dice) n(k int) int {
	if d.i >= len(d.b) || k <= 1 {
		d.i++
		return 0
	}
	v := int(d.b[d.i]) % k
	d.i++
	return v
}

var errCrash = errors.New("simulated crash")

// crashVolume models a volume behind a page cache: writes are kept pending
// until Sync; Close leaves them in the cache (they reach the file in order).
// When the op budget runs out it "loses power": a random subset of the
// pending writes, in random order, reaches the file, and every later call
// fails.
type crashVolume struct {
	f       *os.File
	pending []pendingOp
	budget  *int // ops left before the crash; < 0: never
	d       *dice
	crashed bool
}

type pendingOp struct {
	off  int64
	data []byte // nil: zero length bytes
	zero int64
}

func (c *crashVolume) tick() error {
	if c.crashed {
		return errCrash
	}
	if *c.budget == 0 {
		c.crashed = true
		for _, i := range rand.New(rand.NewPCG(uint64(c.d.n(256)), 1)).Perm(len(c.pending)) {
			if c.d.n(2) == 0 {
				c.flush(c.pending[i])
			}
		}
		c.pending = nil
		return errCrash
	}
	if *c.budget > 0 {
		*c.budget--
	}
	return nil
}

func (c *crashVolume) flush(p pendingOp) {
	if p.data == nil {
		p.data = make([]byte, p.zero)
	}
	if _, err := c.f.WriteAt(p.data, p.off); err != nil {
		panic(err)
	}
}

func (c *crashVolume) WriteAt(p []byte, off int64) (int, error) {
	if err := c.tick(); err != nil {
		return 0, err
	}
	c.pending = append(c.pending, pendingOp{off: off, data: bytes.Clone(p)})
	return len(p), nil
}

func (c *crashVolume) Zero(off, length int64) error {
	if err := c.tick(); err != nil {
		return err
	}
	c.pending = append(c.pending, pendingOp{off: off, zero: length})
	return nil
}

func (c *crashVolume) Sync() error {
	if err := c.tick(); err != nil {
		return err
	}
	for _, p := range c.pending {
		c.flush(p)
	}
	c.pending = nil
	return nil
}

func (c *crashVolume) Close() error {
	if !c.crashed {
		for _, p := range c.pending {
			c.flush(p)
		}
	}
	return c.f.Close()
}

func crashOpener(budget *int, d *dice) openVolumeFunc {
	return func(path string, size int64, create bool) (volumeFile, error) {
		if *budget == 0 {
			return nil, errCrash
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err == nil && st.Size() < size {
			f.Truncate(size)
		}
		return &crashVolume{f: f, budget: budget, d: d}, nil
	}
}

var (
	fuzzJournalOnce sync.Once
	fuzzJournal     generated
	fuzzJournalDir  string
)

// reorderJournal is the journal every fuzz run delivers: ~a dozen files with
// writes, zeros, trims and two snapshot markers.
func reorderJournal(t testing.TB) generated {
	fuzzJournalOnce.Do(func() {
		dir, err := os.MkdirTemp("", "aimdst-fuzz-journal")
		if err != nil {
			t.Fatal(err)
		}
		fuzzJournalDir = dir
		rng := rand.New(rand.NewPCG(7, 11))
		markers := map[int]journal.Record{
			9:  {Kind: journal.KindSnapshot, Label: "s1"},
			25: {Kind: journal.KindSnapshot, Label: "s2"},
			31: {Kind: journal.KindCustom, Label: "c1"},
		}
		fuzzJournal = writeJournal(t, dir, "vol", 64<<10, randomOps(rng, 64<<10, 40, markers))
	})
	return fuzzJournal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzJournalDir != "" {
		os.RemoveAll(fuzzJournalDir)
	}
	os.Exit(code)
}

// noFsync turns off real fsyncs for the test (see FuzzReorder), through
// internal/durable's one test seam.
func noFsync(t testing.TB) {
	t.Cleanup(durable.SetSyncHook(func(*os.File, bool) error { return nil }))
}

// TestDestageCrashAtEveryPoint loses power after each possible number of
// volume operations of a full destage (keeping a varying subset of the
// unsynced writes), restarts, and checks the image and snapshots.
func TestDestageCrashAtEveryPoint(t *testing.T) {
	g := reorderJournal(t)
	noFsync(t)
	const maxPoints = 1000 // bound; the journal has far fewer volume operations
	for k := 0; ; k++ {
		if k == maxPoints {
			t.Fatalf("destage still crashing after %d operations: not every crash point was tried", k)
		}
		root := t.TempDir()
		volPath := filepath.Join(root, "vol.img")
		if err := os.WriteFile(volPath, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		budget := k
		d := &dice{b: bytes.Repeat([]byte{byte(k), 1, 0, 1, 1, 0, byte(k * 7)}, 50)}
		cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
			Volumes: []VolumeConfig{{Name: g.volume, Path: volPath}}, Logger: discardLog(),
			openVolume: crashOpener(&budget, d)}
		n, err := NewNode(cfg)
		if err != nil {
			t.Fatal(err)
		}
		deliverAll(t, n, g.volume, g.files)
		err = destageAll(n, g.volume)
		if err == nil {
			break // k is past the last operation: every crash point was tried
		}
		if !errors.Is(err, errCrash) {
			t.Fatalf("crash after %d ops: %v", k, err)
		}
		budget = -1
		if n, err = NewNode(cfg); err != nil {
			t.Fatal(err)
		}
		if err := destageAll(n, g.volume); err != nil {
			t.Fatalf("crash after %d ops: destage after restart: %v", k, err)
		}
		if got := testkit.ReadFile(t, volPath); !bytes.Equal(got, g.final) {
			t.Fatalf("crash after %d ops: image differs from in-order application: %s", k, testkit.FirstDiff(g.final, got))
		}
		for label, want := range g.snaps {
			if got := testkit.ReadFile(t, SnapshotPath(cfg.SnapshotDir, g.volume, label)); !bytes.Equal(got, want) {
				t.Fatalf("crash after %d ops: snapshot %s differs: %s", k, label, testkit.FirstDiff(want, got))
			}
		}
	}
}

// FuzzReorder delivers a journal's files in an order chosen by the input,
// with duplicates, partial transfers, destage runs cut short by simulated
// power loss (losing any subset of unsynced volume writes) and restarts of the
// node, then checks that the destaged image and the snapshots equal in-order
// application.
func FuzzReorder(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 0, 0, 0, 1, 2, 2, 2, 3, 3, 3})
	f.Add([]byte{0, 5, 1, 0, 2, 0, 4, 0, 3, 2, 1, 1, 0, 2, 2, 0, 0, 9, 2, 2, 0, 7})
	f.Add(bytes.Repeat([]byte{1, 3, 2, 1, 5}, 40))
	g := reorderJournal(f)
	// Durability against power loss is modelled by crashVolume; real fsyncs
	// of buffer files and cursors would only make each run 100x slower.
	noFsync(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := &dice{b: data}
		root := t.TempDir()
		volPath := filepath.Join(root, "vol.img")
		if err := os.WriteFile(volPath, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		budget := -1
		cfg := Config{BufferDir: filepath.Join(root, "buf"), SnapshotDir: filepath.Join(root, "snap"),
			Volumes: []VolumeConfig{{Name: g.volume, Path: volPath}}, Logger: discardLog(),
			openVolume: crashOpener(&budget, d)}
		restart := func() *Node {
			n, err := NewNode(cfg)
			if err != nil {
				t.Fatalf("restart: %v", err)
			}
			return n
		}
		n := restart()
		for step := 0; step < 60 && d.i < len(d.b); step++ {
			switch d.n(5) {
			case 0, 1: // a file arrives, maybe again, maybe only partly
				upto := 1 << 30
				if d.n(4) == 0 {
					upto = d.n(4096)
				}
				if err := deliver(t, n, g.volume, g.files[d.n(len(g.files))], upto); err != nil {
					t.Fatalf("deliver: %v", err)
				}
			case 2, 3: // destage, maybe losing power after a few volume ops
				budget = -1
				if d.n(2) == 0 {
					budget = d.n(12)
				}
				if err := destageAll(n, g.volume); err != nil {
					if !errors.Is(err, errCrash) {
						t.Fatalf("destage: %v", err)
					}
					budget = -1
					n = restart()
				}
			case 4:
				n = restart()
			}
		}
		budget = -1
		for _, p := range g.files {
			if err := deliver(t, n, g.volume, p, 1<<30); err != nil {
				t.Fatalf("final deliver: %v", err)
			}
		}
		if err := destageAll(n, g.volume); err != nil {
			t.Fatalf("final destage: %v", err)
		}
		if got := testkit.ReadFile(t, volPath); !bytes.Equal(got, g.final) {
			t.Fatalf("destaged image differs from in-order application: %s", testkit.FirstDiff(g.final, got))
		}
		for label, want := range g.snaps {
			got := testkit.ReadFile(t, SnapshotPath(cfg.SnapshotDir, g.volume, label))
			if !bytes.Equal(got, want) {
				t.Fatalf("snapshot %s differs from the image at its marker: %s", label, testkit.FirstDiff(want, got))
			}
		}
		st := n.Status().Volumes[0]
		if st.FilesWaiting != 0 || st.BufferBytes != 0 || st.NextFile != uint64(len(g.files))+1 {
			t.Fatalf("after full destage: %+v", st)
		}
	})
}
