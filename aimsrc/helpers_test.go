package aimsrc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// testLogger logs to the test's output at warn level and above.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testConfig is a one-volume config on loopback ports chosen by the kernel.
func testConfig(t testing.TB, dir string, vols ...VolumeConfig) Config {
	dstID, srcID, _ := testkit.Identities()
	return Config{
		Node: "srctest", Buffer: filepath.Join(dir, "buffer"), Volumes: vols,
		Identity: srcID, Pins: testkit.Pins(dstID),
		NBD: "127.0.0.1:0", Control: "127.0.0.1:0", Metrics: "off", Push: "127.0.0.1:1",
		Logger: testLogger(t), RetryMax: 200 * time.Millisecond,
	}
}

// runNode starts a node and stops it at cleanup (or when stop is called).
func runNode(t testing.TB, cfg Config) (n *Node, stop func()) {
	t.Helper()
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

// randomImage writes a file of size bytes: random data with all-zero
// stretches, and returns its content.
func randomImage(t testing.TB, path string, size int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	for off := 0; off < size; off += 64 << 10 {
		end := min(off+64<<10, size)
		if r.IntN(4) == 0 {
			continue // a zero block
		}
		for i := off; i < end; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < end; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// replayer applies journal files in order onto an in-memory zero image and
// checks that record sequences run from 1 without gaps or repeats.
type replayer struct {
	img     []byte
	nextSeq uint64
	records []journal.Record
}

func newReplayer(size int64) *replayer { return &replayer{img: make([]byte, size), nextSeq: 1} }

func (r *replayer) apply(name string, b []byte) error {
	f, err := journal.Parse(name, b)
	if err != nil {
		return err
	}
	for _, rec := range f.Records {
		if rec.Seq != r.nextSeq {
			return fmt.Errorf("%s: record seq %d, want %d", name, rec.Seq, r.nextSeq)
		}
		r.nextSeq++
		r.records = append(r.records, rec)
		switch rec.Kind {
		case journal.KindWrite:
			copy(r.img[rec.Offset:], f.Data(rec))
		case journal.KindZero, journal.KindTrim:
			clear(r.img[rec.Offset : rec.Offset+rec.Length])
		}
	}
	return nil
}

// replayDir applies every sealed file of a journal folder in file order.
func (r *replayer) replayDir(t testing.TB, dir string) {
	t.Helper()
	seqs, err := journal.ListSealed(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		b, err := os.ReadFile(filepath.Join(dir, journal.FileName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.apply(journal.FileName(seq), b); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeDst is a push.Handler that keeps committed files in memory. fail, when
// set, is asked per offer and may refuse it with an error.
type fakeDst struct {
	mu     sync.Mutex
	files  map[string]map[string][]byte // volume -> name -> bytes
	acks   int
	offers int
	fail   func(o push.Offer, attempt int) error
	tries  map[string]int
}

var _ push.Handler = (*fakeDst)(nil)

func newFakeDst() *fakeDst {
	return &fakeDst{files: map[string]map[string][]byte{}, tries: map[string]int{}}
}

func (d *fakeDst) Accept(ctx context.Context, peer push.Hello, o push.Offer) (push.Sink, error) {
	d.mu.Lock()
	d.offers++
	d.tries[o.Volume+"/"+o.Name]++
	attempt := d.tries[o.Volume+"/"+o.Name]
	_, dup := d.files[o.Volume][o.Name]
	fail := d.fail
	d.mu.Unlock()
	if fail != nil {
		if err := fail(o, attempt); err != nil {
			return nil, err
		}
	}
	if dup {
		return nil, push.ErrDuplicate
	}
	return &memSink{d: d, o: o}, nil
}

type memSink struct {
	d   *fakeDst
	o   push.Offer
	buf bytes.Buffer
}

func (s *memSink) Offset() int64               { return 0 }
func (s *memSink) Write(p []byte) (int, error) { return s.buf.Write(p) }
func (s *memSink) Abort()                      {}
func (s *memSink) Commit(ctx context.Context) error {
	if sha256.Sum256(s.buf.Bytes()) != s.o.SHA256 {
		return push.ErrChecksum
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	if s.d.files[s.o.Volume] == nil {
		s.d.files[s.o.Volume] = map[string][]byte{}
	}
	s.d.files[s.o.Volume][s.o.Name] = bytes.Clone(s.buf.Bytes())
	s.d.acks++
	return nil
}

// names returns the names of a volume's received files, sorted.
func (d *fakeDst) names(volume string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.files[volume] {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// replay applies a volume's received files in order.
func (d *fakeDst) replay(t testing.TB, volume string, size int64) *replayer {
	t.Helper()
	r := newReplayer(size)
	for _, name := range d.names(volume) {
		d.mu.Lock()
		b := d.files[volume][name]
		d.mu.Unlock()
		if err := r.apply(name, b); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// checkReplica fails the test unless replaying the files d holds for volume
// gives the image at path.
func (d *fakeDst) checkReplica(t testing.TB, volume, path string, size int64) {
	t.Helper()
	r := d.replay(t, volume, size)
	if img := testkit.ReadFile(t, path); !bytes.Equal(r.img, img) {
		t.Fatalf("destination differs from the image %s: %s", path, testkit.FirstDiff(img, r.img))
	}
}

// serveFakeDst runs a push server for d on loopback until the test ends and
// returns its address.
func serveFakeDst(t testing.TB, d *fakeDst) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startFakeDst(t, d, ln)
	return ln.Addr().String()
}

// startFakeDst serves d on ln until stop is called (or the test ends).
func startFakeDst(t testing.TB, d *fakeDst, ln net.Listener) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	dstID, srcID, _ := testkit.Identities()
	srv := &push.Server{Node: "fakedst", Handler: d, Logger: testLogger(t),
		Auth: push.Auth{Identity: dstID, Peers: testkit.Pins(srcID)}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("push server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
