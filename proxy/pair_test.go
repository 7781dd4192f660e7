package proxy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport"
	"github.com/aimwan/aimwan/transport/push"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/errgroup"
)

// logBuf collects log output safely across goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pairOpts vary the pair under test; the zero value is an optimizing pair.
type pairOpts struct {
	mode        Mode
	schedule    *transport.Schedule
	now         func() time.Time
	destParams  dedupe.Params
	wrongPin    bool  // the source edge pins a fingerprint that is not the peer's
	conns       int   // QUIC connections of the source edge
	destMaxFile int64 // the destination edge's MaxFileSize
	retryFor    time.Duration
	dst         *fakeDst
	local       bool  // give the source edge its own chunk store (delta literals)
	maxStreams  int64 // the destination edge's stream limit per connection (0: the default)
	destCache   int64 // the destination edge's store capacity (0 = 32 MiB)
}

// pair is fake dst ← destination edge ← QUIC ← source edge ← push client, all
// on loopback.
type pair struct {
	dst      *fakeDst
	src      *Source
	dest     *Dest
	srcReg   *prometheus.Registry
	destReg  *prometheus.Registry
	client   *push.Client
	log      *logBuf
	lanAddr  string
	shutdown func()

	// for extra source edges
	srcID, destID *transport.Identity
	wanAddr       string
	tcfg          transport.Config
	logger        *slog.Logger
}

func newPair(t testing.TB, o pairOpts) *pair {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	p := &pair{dst: o.dst, log: &logBuf{}, srcReg: prometheus.NewRegistry(), destReg: prometheus.NewRegistry()}
	if p.dst == nil {
		p.dst = &fakeDst{}
	}
	p.shutdown = func() {
		cancel()
		if p.client != nil {
			p.client.Close()
		}
		if err := g.Wait(); err != nil {
			t.Errorf("pair: %v", err)
		}
	}
	t.Cleanup(p.shutdown)
	logger := slog.New(slog.NewTextHandler(p.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srcID, destID := newID(t), newID(t)

	dstLn := listenTCP(t)
	dstSrv := &push.Server{Node: "dst", Handler: p.dst, Auth: dstAuth(destID), Logger: logger}
	g.Go(func() error { return dstSrv.Serve(ctx, dstLn) })

	tcfg := transport.Config{LinkRate: 100e6, RTT: time.Millisecond, IdleTimeout: 10 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxStreams: o.maxStreams}
	wan, err := transport.Listen("127.0.0.1:0", destID, transport.Pins{srcID.Fingerprint}, tcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	store, err := dedupe.OpenStore(dedupe.StoreConfig{MaxBytes: cmp.Or(o.destCache, 32<<20), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	p.dest, err = NewDest(DestConfig{Push: dstLn.Addr().String(), Identity: destID, LANPins: lanPins(lanDst), Store: store, Params: o.destParams, MaxFileSize: o.destMaxFile,
		Registerer: p.destReg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	g.Go(func() error { return p.dest.Serve(ctx, wan) })
	p.srcID, p.destID, p.wanAddr, p.tcfg, p.logger = srcID, destID, wan.Addr().String(), tcfg, logger
	tcfg.Conns = o.conns

	pin := destID.Fingerprint
	if o.wrongPin {
		pin = srcID.Fingerprint
	}
	var local *dedupe.Store
	if o.local {
		if local, err = dedupe.OpenStore(dedupe.StoreConfig{MaxBytes: 32 << 20, Logger: logger}); err != nil {
			t.Fatal(err)
		}
	}
	p.src, err = NewSource(SourceConfig{Mode: o.mode, Peer: wan.Addr().String(), Identity: srcID,
		Pins: transport.Pins{pin}, LANPins: lanPins(lanSrc), Transport: tcfg, Schedule: o.schedule, Now: o.now, RetryFor: o.retryFor,
		Local: local, Registerer: p.srcReg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	lan := listenTCP(t)
	p.lanAddr = lan.Addr().String()
	g.Go(func() error { return p.src.Serve(ctx, lan) })

	p.client, err = push.Dial(ctx, p.lanAddr, push.Hello{Node: "src"}, srcAuth(srcID))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// extraSource starts another source edge (same identity) towards the pair's
// destination edge, as after a restart, and returns a push client to it.
func (p *pair) extraSource(t testing.TB) (*Source, *push.Client, *prometheus.Registry) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	src, err := NewSource(SourceConfig{Peer: p.wanAddr, Identity: p.srcID, Pins: transport.Pins{p.destID.Fingerprint},
		LANPins: lanPins(lanSrc), Transport: p.tcfg, Registerer: reg, Logger: p.logger})
	if err != nil {
		t.Fatal(err)
	}
	lan := listenTCP(t)
	done := make(chan error, 1)
	go func() { done <- src.Serve(ctx, lan) }()
	c, err := push.Dial(ctx, lan.Addr().String(), push.Hello{Node: "src2"}, srcAuth(p.srcID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("extra source: %v", err)
		}
	})
	return src, c, reg
}

// The LAN peers of the tests' proxies: lanSrc pushes to a source edge,
// lanDst is the dst a destination edge pushes to.
const (
	lanSrc = iota
	lanDst
)

// lanID returns the identity of a LAN peer (made once per test binary).
func lanID(which int) *transport.Identity {
	dst, src, _ := testkit.Identities()
	if which == lanDst {
		return dst
	}
	return src
}

// lanPins pins a LAN peer.
func lanPins(which int) transport.Pins { return transport.Pins{lanID(which).Fingerprint} }

// srcAuth is what a test src presents to a source edge of identity proxy.
func srcAuth(proxy *transport.Identity) push.Auth {
	return push.Auth{Identity: lanID(lanSrc), Peers: transport.Pins{proxy.Fingerprint}}
}

// dstAuth is the auth of a test dst that a destination edge of identity
// proxy pushes to.
func dstAuth(proxy *transport.Identity) push.Auth {
	return push.Auth{Identity: lanID(lanDst), Peers: transport.Pins{proxy.Fingerprint}}
}

func newID(t testing.TB) *transport.Identity {
	t.Helper()
	id, err := transport.GenerateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func listenTCP(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// jfile is one sealed journal file.
type jfile struct {
	offer push.Offer
	data  []byte
}

func (f jfile) key() string { return f.offer.Volume + "/" + f.offer.Name }

// makeJournal writes blocks (4 KiB each, in order) to a volume's journal with
// small files and returns the sealed files.
func makeJournal(t testing.TB, volume string, blocks [][]byte) []jfile {
	t.Helper()
	dir := filepath.Join(t.TempDir(), volume)
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: volume, VolumeSize: 1 << 30,
		MaxFileSize: 256 << 10, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range blocks {
		if _, err := w.Write(int64(i)*int64(len(b)), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.aimj"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var out []jfile
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := journal.ParseFileName(filepath.Base(n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, jfile{offer: push.FileOffer(volume, seq, b), data: b})
	}
	if len(out) == 0 {
		t.Fatal("journal wrote no files")
	}
	return out
}

// randomBlocks returns n blocks of 4 KiB from seed; compressible says
// whether half of each block is a repeating pattern.
func randomBlocks(seed uint64, n int) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, 4096)
		for j := 0; j < 2048; j += 8 {
			v := r.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		copy(b[2048:], bytes.Repeat([]byte("aimwan"), 400))
		out[i] = b
	}
	return out
}

// pushAll pushes files concurrently and returns the first error.
func pushAll(ctx context.Context, c *push.Client, files []jfile) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, f := range files {
		g.Go(func() error { return c.Push(ctx, f.offer, bytes.NewReader(f.data)) })
	}
	return g.Wait()
}

// checkArrived asserts that dst holds every file byte for byte.
func checkArrived(t testing.TB, d *fakeDst, files []jfile) {
	t.Helper()
	for _, f := range files {
		got, ok := d.get(f.key())
		if !ok {
			t.Fatalf("dst lacks %s", f.key())
		}
		if !bytes.Equal(got, f.data) {
			t.Fatalf("dst's %s differs from the source's", f.key())
		}
	}
}

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, m := range family(t, reg, name).GetMetric() {
		if m.GetCounter() != nil {
			sum += m.GetCounter().GetValue()
		} else if m.GetGauge() != nil {
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// family returns the gathered metric family name (nil when absent).
func family(t testing.TB, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var _ = errors.Is
var _ = testutil.ToFloat64

// labelled returns the value of the counter name whose label key is value.
func labelled(t testing.TB, reg *prometheus.Registry, name, key, value string) float64 {
	t.Helper()
	for _, m := range family(t, reg, name).GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == key && lp.GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
