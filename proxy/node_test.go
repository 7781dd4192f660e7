package proxy

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport"
	"github.com/aimwan/aimwan/transport/push"
)

func TestLoadSchedule(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wan.schedule")
	if err := os.WriteFile(file, []byte("tz UTC\nmon-fri 08:00-18:00 2mbit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, path, err := loadSchedule(file); err != nil || s == nil || path != file {
		t.Errorf("schedule file: %v %q %v", s, path, err)
	}
	if s, path, err := loadSchedule("tz UTC; sat 00:00-24:00 paused"); err != nil || s == nil || path != "" {
		t.Errorf("inline schedule: %v %q %v", s, path, err)
	}
	if s, _, err := loadSchedule(""); err != nil || s != nil {
		t.Errorf("no schedule: %v %v", s, err)
	}
}

func TestNodeConfigErrors(t *testing.T) {
	id := newID(t)
	base := func(c Config) Config {
		c.Identity, c.Pins, c.Metrics = id, transport.Pins{id.Fingerprint}, "off"
		c.LANPins = lanPins(lanSrc)
		c.Logger = slog.New(slog.DiscardHandler)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no role", base(Config{}), "choose a role"},
		{"both roles", base(Config{WANPeer: "a:1", LANForward: "b:2"}), "not both"},
		{"source without peer", base(Config{LANListen: "127.0.0.1:0"}), "--wan-peer"},
		{"no identity", Config{WANPeer: "a:1", Pins: transport.Pins{id.Fingerprint}}, "identity"},
		{"no pin", Config{WANPeer: "a:1", Identity: id}, "fingerprint"},
		{"no LAN pin at the source edge", Config{WANPeer: "a:1", Identity: id, Pins: transport.Pins{id.Fingerprint}}, "--lan-peer-fp: the fingerprint of src"},
		{"no LAN pin at the destination edge", Config{LANForward: "a:1", Identity: id, Pins: transport.Pins{id.Fingerprint}}, "--lan-peer-fp: the fingerprint of dst"},
		{"bad schedule", base(Config{WANPeer: "a:1", LANListen: "127.0.0.1:0", Schedule: "mon 8-9 1mbit"}), "schedule line 1"},
		{"bad mode", base(Config{WANPeer: "a:1", LANListen: "127.0.0.1:0", Mode: 9}), "mode"},
		{"bad record name", base(Config{WANListen: "127.0.0.1:0", Node: "a/b", Record: t.TempDir()}), "--record"},
		{"negative cache", base(Config{WANListen: "127.0.0.1:0", CacheSize: -1}), "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NewNode(tc.cfg)
			if err == nil {
				n.Close()
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

// TestNodeDefaults: the role picks the addresses a node listens on.
func TestNodeDefaults(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		role Role
		want Config
	}{
		{Config{WANPeer: "x:1"}, RoleSource, Config{LANListen: DefaultLANListen, Metrics: DefaultSourceMetrics}},
		{Config{LANForward: "x:1"}, RoleDest, Config{WANListen: DefaultWANListen, Metrics: DefaultDestMetrics}},
		{Config{WANListen: "x:1"}, RoleDest, Config{LANForward: DefaultLANForward, Metrics: DefaultDestMetrics}},
	} {
		role, err := tc.cfg.role()
		if err != nil || role != tc.role {
			t.Fatalf("%+v: role %v, %v; want %v", tc.cfg, role, err, tc.role)
		}
		c := tc.cfg
		c.populate(role)
		if c.ScheduleCheck != DefaultScheduleCheck || c.Logger == nil {
			t.Errorf("%v: schedule check %v, logger %v", role, c.ScheduleCheck, c.Logger)
		}
		for _, f := range []struct{ got, want string }{{c.LANListen, tc.want.LANListen}, {c.WANListen, tc.want.WANListen},
			{c.LANForward, tc.want.LANForward}, {c.Metrics, tc.want.Metrics}} {
			if f.want != "" && f.got != f.want {
				t.Errorf("%v: %q, want %q", role, f.got, f.want)
			}
		}
	}
}

// TestNodePair runs both edges as nodes: files pushed to the source edge
// reach dst, the metrics are served, both record, the destination's cache is
// saved on stop, and a changed schedule file is picked up.
func TestNodePair(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	srcID, destID := newID(t), newID(t)
	g, gctx := errgroup.WithContext(ctx)
	dst := &fakeDst{}
	dstLn := listenTCP(t)
	g.Go(func() error {
		return (&push.Server{Node: "dst", Handler: dst, Auth: dstAuth(destID), Logger: logger}).Serve(gctx, dstLn)
	})

	tcfg := transport.Config{LinkRate: 100e6, RTT: time.Millisecond}
	rec, cache := filepath.Join(dir, "rec"), filepath.Join(dir, "cache")
	dest, err := NewNode(Config{Node: "proxy-dst", Identity: destID, Pins: transport.Pins{srcID.Fingerprint}, LANPins: lanPins(lanDst),
		Transport: tcfg, WANListen: "127.0.0.1:0", LANForward: dstLn.Addr().String(), Cache: cache, CacheSize: 32 << 20,
		Metrics: "127.0.0.1:0", Record: rec, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	sched := filepath.Join(dir, "wan.schedule")
	writeSchedule(t, sched, "* 00:00-24:00 100mbit\n", time.Now())
	src, err := NewNode(Config{Node: "proxy-src", Identity: srcID, Pins: transport.Pins{destID.Fingerprint}, LANPins: lanPins(lanSrc),
		Transport: tcfg, LANListen: "127.0.0.1:0", WANPeer: dest.WANAddr().String(), Schedule: sched,
		ScheduleCheck: 10 * time.Millisecond, Metrics: "off", Record: rec, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if src.Role() != RoleSource || dest.Role() != RoleDest || src.MetricsAddr() != nil || src.WANAddr() != nil {
		t.Fatalf("roles %v %v, source metrics %v", src.Role(), dest.Role(), src.MetricsAddr())
	}
	g.Go(func() error { return dest.Serve(gctx) })
	g.Go(func() error { return src.Serve(gctx) })

	files := makeJournal(t, "vol-a", randomBlocks(3, 96))
	c, err := push.Dial(ctx, src.LANAddr().String(), push.Hello{Node: "src"}, srcAuth(srcID))
	if err != nil {
		t.Fatal(err)
	}
	if err := pushAll(ctx, c, files); err != nil {
		t.Fatal(err)
	}
	c.Close()
	checkArrived(t, dst, files)

	// Every metric of an edge carries its role, so the two edges' logical
	// bytes are never added up (and the runtime collectors are served too).
	body := scrape(t, dest.MetricsAddr().String())
	for _, want := range []string{metrics.ProxyLogical + `{role="destination"} `, metrics.ProxyWire + `{role="destination"} `,
		`aimwan_proxy_peer_rtt_seconds{conn="0",peer="source-edge",role="destination"}`, "process_cpu_seconds_total ", metrics.BuildInfo + "{"} {
		if !strings.Contains(body, want) {
			t.Errorf("destination edge's /metrics lacks %s:\n%.500s", want, body)
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "aimwan_proxy_") && !strings.Contains(line, `role="destination"`) {
			t.Errorf("destination edge's metric without its role: %s", line)
		}
	}
	// Types follow the conventions (counters end in _total and only they do;
	// the QUIC byte and loss counts are counters): promlint over both edges.
	for _, n := range []*Node{src, dest} {
		problems, err := testutil.GatherAndLint(n.reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s edge: lint %s: %s", n.Role(), p.Metric, p.Text)
		}
	}
	for _, want := range []string{"# TYPE aimwan_proxy_peer_quic_sent_bytes_total counter", "# TYPE aimwan_proxy_peer_lost_packets_total counter",
		"# TYPE aimwan_proxy_peer_rtt_seconds gauge"} {
		if !strings.Contains(body, want) {
			t.Errorf("destination edge's /metrics lacks %q", want)
		}
	}
	if got := labelled(t, src.reg, metrics.ProxyLogical, metrics.LabelRole, metrics.RoleSource); got == 0 {
		t.Errorf("source edge's %s{role=source} = 0 after a push", metrics.ProxyLogical)
	}
	if c := counter(t, src.reg, metrics.ProxyScheduleCap); c != 100e6/8 {
		t.Errorf("schedule cap %v, want %v", c, 100e6/8)
	}
	writeSchedule(t, sched, "* 00:00-24:00 50mbit\n", time.Now().Add(time.Minute))
	testkit.WaitFor(t, 10*time.Second, "the changed schedule file in force", func() bool {
		return counter(t, src.reg, metrics.ProxyScheduleCap) == 50e6/8
	})

	cancel()
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"proxy-src.jsonl", "proxy-dst.jsonl"} {
		if b, err := os.ReadFile(filepath.Join(rec, name)); err != nil || strings.Count(string(b), "\n") < 2 {
			t.Errorf("recording %s: %d bytes, %v", name, len(b), err)
		}
	}
	if n := countFiles(t, cache); n == 0 {
		t.Error("the destination's cache was not saved on stop")
	}
}

// TestNodeCacheMovedAside: a cache that cannot be loaded is moved aside and
// the node starts cold, instead of refusing to start.
func TestNodeCacheMovedAside(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "cache")
	store, err := dedupe.OpenStore(dedupe.StoreConfig{Dir: cache, MaxBytes: 32 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	store.Put(dedupe.Sum([]byte("chunk")), []byte("chunk"))
	if err := store.Close(); err != nil { // a store is locked while open
		t.Fatal(err)
	}
	damaged := 0
	err = filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		damaged++
		return os.WriteFile(path, []byte("not a chunk store"), 0o644)
	})
	if err != nil || damaged == 0 {
		t.Fatalf("damaging %d files of the store: %v", damaged, err)
	}
	id := newID(t)
	n, err := NewNode(Config{Identity: id, Pins: transport.Pins{id.Fingerprint}, LANPins: lanPins(lanDst), WANListen: "127.0.0.1:0",
		Cache: cache, CacheSize: 32 << 20, Metrics: "off", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("node on a damaged cache: %v", err)
	}
	if n.store.Has(dedupe.Sum([]byte("chunk"))) {
		t.Error("the node did not start cold")
	}
	n.Close()
	if countFiles(t, cache+".bad") != damaged {
		t.Errorf("the damaged store was not moved to %s.bad", cache)
	}
}

// writeSchedule writes a schedule file with modification time mt.
func writeSchedule(t *testing.T, path, rules string, mt time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte("tz UTC\n"+rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// scrape returns the body of http://addr/metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// countFiles counts the regular files below dir (0 when it does not exist).
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}

// TestNodeTemporaryCache: without a cache folder the node keeps its store
// in a temporary folder, removed when the node stops.
func TestNodeTemporaryCache(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	id := newID(t)
	n, err := NewNode(Config{Identity: id, Pins: transport.Pins{id.Fingerprint}, LANPins: lanPins(lanDst), WANListen: "127.0.0.1:0",
		CacheSize: 32 << 20, Metrics: "off", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 1 {
		t.Fatalf("%d entries in TMPDIR, want the store's folder", len(ents))
	}
	n.store.Put(dedupe.Sum([]byte("chunk")), []byte("chunk"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := n.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("temporary store left behind: %v", ents)
	}
}

// TestStaleTemporaryCacheRemoved: a temporary store left by a killed proxy
// is removed by the next proxy without --cache; one in use is not.
func TestStaleTemporaryCacheRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	log := slog.New(slog.DiscardHandler)
	stale := filepath.Join(tmp, tempCachePrefix+"stale")
	inUse := filepath.Join(tmp, tempCachePrefix+"inuse")
	for _, d := range []string{stale, inUse} {
		st, err := dedupe.OpenStore(dedupe.StoreConfig{Dir: d, MaxBytes: 32 << 20, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if d == stale {
			st.Close()
		} else {
			t.Cleanup(func() { st.Close() })
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	_, closeStore, err := openCache("", 32<<20, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary store was not removed")
	}
	if _, err := os.Stat(inUse); err != nil {
		t.Errorf("the temporary store in use was removed: %v", err)
	}
}
