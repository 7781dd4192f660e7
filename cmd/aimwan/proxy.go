package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/proxy"
	"github.com/aimwan/aimwan/reports"
	"github.com/aimwan/aimwan/transport"
)

func init() {
	register(command{Name: "proxy", Summary: "edge proxy: LAN push <-> dedupe <-> QUIC WAN, either role (prime: warm the cache)", Run: runProxy})
}

// Default addresses of the proxies. The source edge listens where src pushes;
// the destination edge forwards to dst's default listen address.
const (
	proxyDefaultLANListen     = "127.0.0.1:7810"
	proxyDefaultWANListen     = ":7820"
	proxyDefaultSourceMetrics = "127.0.0.1:9711"
	proxyDefaultDestMetrics   = "127.0.0.1:9712"
)

// proxyFile is the YAML form of a proxy's configuration.
type proxyFile struct {
	Node       string   `yaml:"node"`
	Mode       string   `yaml:"mode"`        // optimize | passthrough
	LANListen  string   `yaml:"lan_listen"`  // source edge: where src pushes
	WANPeer    string   `yaml:"wan_peer"`    // source edge: the destination edge (UDP host:port)
	WANListen  string   `yaml:"wan_listen"`  // destination edge: QUIC listen address
	LANForward string   `yaml:"lan_forward"` // destination edge: dst's push address
	Key        string   `yaml:"key"`         // identity dir (aimwan keygen)
	PeerFP     []string `yaml:"peer_fp"`     // pinned peer fingerprints
	Cache      string   `yaml:"cache"`       // chunk store dir (destination edge)
	CacheSize  string   `yaml:"cache_size"`  // chunk store capacity (disk)
	Metrics    string   `yaml:"metrics"`
	Record     string   `yaml:"record"`
	Schedule   string   `yaml:"schedule"`   // schedule file, or inline rules separated by ';'
	Conns      int      `yaml:"conns"`      // QUIC connections to the peer
	LinkRate   string   `yaml:"link_rate"`  // WAN bottleneck, sizes the windows
	RTT        string   `yaml:"rtt"`        // WAN round trip, sizes the windows
	Level      string   `yaml:"level"`      // auto | fastest | default | better | best | max
	MaxMemory  string   `yaml:"max_memory"` // source edge: bytes of files held at once
	MissWait   string   `yaml:"miss_wait"`  // destination edge: wait for files still arriving before asking back
}

func runProxy(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "prime" {
		return runProxyPrime(ctx, args[1:])
	}
	f, err := proxyFlags(args)
	if err != nil {
		return err
	}
	return serveProxy(ctx, f)
}

// proxyFlags reads --config and the flags (flags win).
func proxyFlags(args []string) (proxyFile, error) {
	fs := newFlagSet("proxy", "(--lan-listen ADDR --wan-peer ADDR | --wan-listen ADDR --lan-forward ADDR) --key DIR --peer-fp FP [flags]\n"+
		"       aimwan proxy prime --cache DIR --image PATH")
	cfgPath := fs.String("config", "", "YAML config `file` (flags override it)")
	var fps multiFlag
	fs.Var(&fps, "peer-fp", "pinned peer fingerprint `FP` (repeatable or comma-separated; from aimwan keygen)")
	conns := fs.Int("conns", 0, "QUIC connections to the peer (default 1)")
	str := map[string]*string{
		"node":        fs.String("node", "", "node name in hellos"),
		"mode":        fs.String("mode", "", "optimize (dedupe + zstd, default) or passthrough (raw bytes)"),
		"lan-listen":  fs.String("lan-listen", "", "source edge: push listen `ADDR` for src (default "+proxyDefaultLANListen+")"),
		"wan-peer":    fs.String("wan-peer", "", "source edge: destination edge's UDP `ADDR`"),
		"wan-listen":  fs.String("wan-listen", "", "destination edge: QUIC (UDP) listen `ADDR` (default "+proxyDefaultWANListen+")"),
		"lan-forward": fs.String("lan-forward", "", "destination edge: dst's push `ADDR` (default "+dstDefaultListen+")"),
		"key":         fs.String("key", "", "identity `DIR` made by aimwan keygen"),
		"cache":       fs.String("cache", "", "chunk store `DIR` (persisted, may be wiped; without it a temporary folder, removed at exit)"),
		"cache-size":  fs.String("cache-size", "", "chunk store capacity `SIZE` on disk, e.g. 200GiB (default: half the free space of its file system, at most 32GiB)"),
		"metrics":     fs.String("metrics", "", "Prometheus `ADDR` or off (default "+proxyDefaultSourceMetrics+" / "+proxyDefaultDestMetrics+")"),
		"record":      fs.String("record", "", "record metrics as JSONL into `DIR`"),
		"schedule":    fs.String("schedule", "", "WAN rate schedule: a `FILE`, or inline rules separated by ';' (docs/deployment.md)"),
		"link-rate":   fs.String("link-rate", "", "WAN bottleneck `RATE` that sizes the QUIC windows (default 100mbit)"),
		"rtt":         fs.String("rtt", "", "WAN round-trip `DURATION` that sizes the QUIC windows (default 50ms)"),
		"level":       fs.String("level", "", "literal compression: auto (default), fastest, default, better, best, max (libzstd -19; cgo builds)"),
		"max-memory":  fs.String("max-memory", "", "source edge: `SIZE` of files held at once (default 256MiB)"),
		"miss-wait":   fs.String("miss-wait", "", "destination edge: at most this `DURATION` a file with unknown references waits for files sent before it that are still arriving, before asking back (default 10m; the wait ends when they are done)"),
	}
	if err := parseFlags(fs, args); err != nil {
		return proxyFile{}, err
	}
	if fs.NArg() > 0 {
		return proxyFile{}, usagef("proxy: unexpected argument %q (subcommand: prime)", fs.Arg(0))
	}
	var f proxyFile
	if err := loadYAML(*cfgPath, &f); err != nil {
		return f, err
	}
	dsts := map[string]*string{"node": &f.Node, "mode": &f.Mode, "lan-listen": &f.LANListen, "wan-peer": &f.WANPeer,
		"wan-listen": &f.WANListen, "lan-forward": &f.LANForward, "key": &f.Key, "cache": &f.Cache,
		"cache-size": &f.CacheSize, "metrics": &f.Metrics, "record": &f.Record, "schedule": &f.Schedule,
		"link-rate": &f.LinkRate, "rtt": &f.RTT, "level": &f.Level, "max-memory": &f.MaxMemory,
		"miss-wait": &f.MissWait}
	for name, v := range str {
		if flagWasSet(fs, name) {
			*dsts[name] = *v
		}
	}
	if flagWasSet(fs, "conns") {
		f.Conns = *conns
	}
	if len(fps) > 0 {
		f.PeerFP = nil
		for _, s := range fps {
			f.PeerFP = append(f.PeerFP, splitList(s)...)
		}
	}
	return f, nil
}

// proxyCommon is what both roles need, parsed from the file form.
type proxyCommon struct {
	mode      proxy.Mode
	id        *transport.Identity
	pins      transport.Pins
	transport transport.Config
	level     dedupe.Level
}

func proxyParseCommon(f proxyFile) (proxyCommon, error) {
	var c proxyCommon
	var err error
	if c.mode, err = proxy.ParseMode(f.Mode); err != nil {
		return c, usagef("proxy: %v", err)
	}
	if f.Key == "" {
		return c, usagef("proxy: --key DIR is required (make one with aimwan keygen --dir DIR)")
	}
	if c.id, err = transport.LoadIdentity(f.Key); err != nil {
		return c, usagef("proxy: %v", err)
	}
	if len(f.PeerFP) == 0 {
		return c, usagef("proxy: --peer-fp is required: the peer's fingerprint, printed by its aimwan keygen")
	}
	for _, s := range f.PeerFP {
		fp, err := transport.ParseFingerprint(s)
		if err != nil {
			return c, usagef("proxy: --peer-fp: %v", err)
		}
		c.pins = append(c.pins, fp)
	}
	c.transport.Conns = f.Conns
	if f.LinkRate != "" {
		if c.transport.LinkRate, err = units.ParseRate(f.LinkRate); err != nil {
			return c, usagef("proxy: --link-rate: %v", err)
		}
	}
	if f.RTT != "" {
		if c.transport.RTT, err = time.ParseDuration(f.RTT); err != nil || c.transport.RTT <= 0 {
			return c, usagef("proxy: --rtt %q: want a positive duration such as 40ms", f.RTT)
		}
	}
	if err := c.transport.Validate(); err != nil {
		return c, usagef("proxy: %v", err)
	}
	if f.Level != "" && f.Level != "auto" {
		if c.level, err = dedupe.ParseLevel(f.Level); err != nil {
			return c, usagef("proxy: --level: %v", err)
		}
	}
	return c, nil
}

// serveProxy picks the role from the addresses given and runs it with its
// metrics until ctx ends.
func serveProxy(ctx context.Context, f proxyFile) error {
	source := f.LANListen != "" || f.WANPeer != ""
	dest := f.WANListen != "" || f.LANForward != ""
	switch {
	case source && dest:
		return usagef("proxy: give either --lan-listen/--wan-peer (source edge) or --wan-listen/--lan-forward (destination edge), not both")
	case !source && !dest:
		return usagef("proxy: choose a role: --wan-peer ADDR (source edge) or --lan-forward ADDR (destination edge)")
	}
	c, err := proxyParseCommon(f)
	if err != nil {
		return err
	}
	log := slog.Default().With("daemon", "proxy")
	if err := proxyMemoryLimit(f, source); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	g, ctx := errgroup.WithContext(ctx)
	metricsAddr := proxyDefaultDestMetrics
	var closers []func() // the chunk store, after every goroutine ended
	defer func() {
		for _, fn := range closers {
			fn()
		}
	}()
	if source {
		metricsAddr = proxyDefaultSourceMetrics
		err = startSourceEdge(ctx, g, f, c, log, reg, &closers)
	} else {
		err = startDestEdge(ctx, g, f, c, log, reg, &closers)
	}
	if err != nil {
		return err
	}
	if m := orDefault(f.Metrics, metricsAddr); m != "off" {
		g.Go(func() error { return reports.ServeMetrics(ctx, m, reg, log) })
	}
	if f.Record != "" {
		rec, err := reports.NewRecorder(reports.RecorderConfig{Dir: f.Record, Daemon: orDefault(f.Node, "proxy"), Gatherer: reg, Logger: log})
		if err != nil {
			return usagef("proxy: --record: %v", err)
		}
		g.Go(func() error { return rec.Serve(ctx) })
	}
	err = g.Wait()
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func startSourceEdge(ctx context.Context, g *errgroup.Group, f proxyFile, c proxyCommon, log *slog.Logger, reg prometheus.Registerer, closers *[]func()) error {
	if f.WANPeer == "" {
		return usagef("proxy: the source edge needs --wan-peer ADDR (the destination edge)")
	}
	// The source edge's own store (in memory unless --cache names a folder)
	// lets new chunks be compressed against the ones they replace.
	local, closeCache, err := openCache(f.Cache, f.CacheSize, log)
	if err != nil {
		return err
	}
	*closers = append(*closers, closeCache)
	sched, schedFile, err := loadSchedule(f.Schedule)
	if err != nil {
		return err
	}
	maxMem, err := optSize("max-memory", f.MaxMemory)
	if err != nil {
		return err
	}
	src, err := proxy.NewSource(proxy.SourceConfig{Node: f.Node, Mode: c.mode, Peer: f.WANPeer, Identity: c.id,
		Pins: c.pins, Transport: c.transport, Schedule: sched, Level: c.level, Local: local, MaxMemory: maxMem,
		Registerer: reg, Logger: log})
	if err != nil {
		return usagef("proxy: %v", err)
	}
	ln, err := net.Listen("tcp", orDefault(f.LANListen, proxyDefaultLANListen))
	if err != nil {
		return fmt.Errorf("proxy: listen --lan-listen: %w", err)
	}
	log.Info("source edge up", "lan", ln.Addr().String(), "wan_peer", f.WANPeer, "mode", c.mode.String(),
		"fingerprint", c.id.Fingerprint.String())
	g.Go(func() error { return src.Serve(ctx, ln) })
	if schedFile != "" {
		g.Go(func() error { return watchSchedule(ctx, schedFile, src.Throttle(), log) })
	}
	return nil
}

func startDestEdge(ctx context.Context, g *errgroup.Group, f proxyFile, c proxyCommon, log *slog.Logger, reg prometheus.Registerer, closers *[]func()) error {
	if f.Schedule != "" {
		log.Warn("--schedule applies to the source edge (it caps what is sent); ignored here")
	}
	var missWait time.Duration
	if f.MissWait != "" {
		var err error
		if missWait, err = time.ParseDuration(f.MissWait); err != nil {
			return usagef("proxy: --miss-wait %q: %v", f.MissWait, err)
		}
	}
	store, closeCache, err := openCache(f.Cache, f.CacheSize, log)
	if err != nil {
		return err
	}
	*closers = append(*closers, closeCache)
	d, err := proxy.NewDest(proxy.DestConfig{Node: f.Node, Forward: orDefault(f.LANForward, dstDefaultListen),
		Store: store, MissWait: missWait, Registerer: reg, Logger: log})
	if err != nil {
		return usagef("proxy: %v", err)
	}
	ln, err := transport.Listen(orDefault(f.WANListen, proxyDefaultWANListen), c.id, c.pins, c.transport, log)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	log.Info("destination edge up", "wan", ln.Addr().String(), "forward", orDefault(f.LANForward, dstDefaultListen),
		"fingerprint", c.id.Fingerprint.String())
	g.Go(func() error { return d.Serve(ctx, ln) })
	return nil
}

// proxyMemoryLimit sets the Go runtime's soft memory limit (unless
// GOMEMLIMIT does): the files the source edge holds plus 192 MiB, 384 MiB
// at the destination edge, so the garbage collector keeps the resident
// memory near what is live instead of letting it double.
func proxyMemoryLimit(f proxyFile, source bool) error {
	if os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	limit := int64(384 << 20)
	if source {
		held, err := optSize("max-memory", f.MaxMemory)
		if err != nil {
			return err
		}
		if held <= 0 {
			held = proxy.DefaultMaxMemory
		}
		limit = held + 192<<20
	}
	debug.SetMemoryLimit(limit)
	return nil
}

// openCache opens the chunk store in dir, of capacity size (disk bytes;
// "" = the default: half the free space of its file system, at most 32
// GiB). Without dir the store lives in a private temporary folder,
// removed when the proxy stops. A store that cannot be loaded is moved
// aside (DIR.bad) and the store starts cold: it is a cache. The returned
// function closes it (and removes a temporary folder).
func openCache(dir, size string, log *slog.Logger) (*dedupe.Store, func(), error) {
	maxBytes, err := optSize("cache-size", size)
	if err != nil {
		return nil, nil, err
	}
	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "aimwan-cache-"); err != nil {
			return nil, nil, fmt.Errorf("proxy: cache: %w", err)
		}
		log.Info("no --cache folder: the chunk store lives in a temporary folder until the proxy stops", "dir", dir)
	}
	cfg := dedupe.StoreConfig{Dir: dir, MaxBytes: maxBytes, Logger: log}
	store, err := dedupe.OpenStore(cfg)
	if errors.Is(err, dedupe.ErrStoreLoad) {
		log.Warn("chunk store unreadable; moved aside, starting cold", "dir", dir, "moved_to", dir+".bad", "err", err)
		_ = os.RemoveAll(dir + ".bad")
		if rerr := os.Rename(dir, dir+".bad"); rerr != nil {
			return nil, nil, fmt.Errorf("proxy: move unreadable cache aside: %w", rerr)
		}
		store, err = dedupe.OpenStore(cfg)
	}
	if err != nil {
		if temp {
			_ = os.RemoveAll(dir)
		}
		return nil, nil, fmt.Errorf("proxy: cache: %w", err)
	}
	st := store.Stats()
	log.Info("chunk store", "dir", dir, "capacity", units.FormatSize(int64(st.Capacity)),
		"holds", units.FormatSize(int64(st.Bytes)), "chunks", st.Chunks)
	closeFn := func() {
		if err := store.Close(); err != nil {
			log.Warn("closing the chunk store", "dir", dir, "err", err)
		}
		if temp {
			_ = os.RemoveAll(dir)
		}
	}
	return store, closeFn, nil
}

// loadSchedule reads --schedule: an existing file (returned as path, watched
// for changes) or inline rules.
func loadSchedule(spec string) (*transport.Schedule, string, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, "", nil
	}
	if b, err := os.ReadFile(spec); err == nil {
		s, err := transport.ParseSchedule(string(b))
		if err != nil {
			return nil, "", usagef("proxy: schedule file %s: %v", spec, err)
		}
		return s, spec, nil
	}
	s, err := transport.ParseSchedule(spec)
	if err != nil {
		return nil, "", usagef("proxy: --schedule (not a file, read as inline rules): %v", err)
	}
	return s, "", nil
}

// watchSchedule reloads the schedule file when it changes (checked every 5s);
// a file with errors is reported and the schedule in force kept.
func watchSchedule(ctx context.Context, path string, th *transport.Throttle, log *slog.Logger) error {
	last := modTime(path)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		mt := modTime(path)
		if mt.Equal(last) {
			continue
		}
		last = mt
		b, err := os.ReadFile(path)
		if err == nil {
			var s *transport.Schedule
			if s, err = transport.ParseSchedule(string(b)); err == nil {
				th.SetSchedule(s)
				log.Info("schedule reloaded", "file", path)
				continue
			}
		}
		log.Error("schedule file not reloaded; keeping the schedule in force", "file", path, "err", err)
	}
}

func modTime(path string) time.Time {
	st, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// runProxyPrime loads a local image's chunks into a chunk store, so data the
// DR site already holds is never sent.
func runProxyPrime(ctx context.Context, args []string) error {
	fs := newFlagSet("proxy prime", "--cache DIR --image PATH [--cache-size SIZE] [--progress]")
	cache := fs.String("cache", "", "chunk store `DIR` of the destination edge (stop the proxy first)")
	image := fs.String("image", "", "image `PATH` to load (repeat the command for several)")
	size := fs.String("cache-size", "", "chunk store capacity `SIZE` (use the proxy's value; default: half the free space, at most 32GiB)")
	bar := fs.Bool("progress", false, "draw the progress bar on stderr even when it is not a terminal (else a line every 5s)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("proxy prime: unexpected argument %q", fs.Arg(0))
	}
	if *cache == "" || *image == "" {
		return usagef("proxy prime: --cache DIR and --image PATH are required")
	}
	log := slog.Default().With("daemon", "proxy-prime")
	img, err := os.Open(*image)
	if err != nil {
		return fmt.Errorf("proxy prime: %w", err)
	}
	defer img.Close()
	store, closeCache, err := openCache(*cache, *size, log)
	if err != nil {
		return err
	}
	defer closeCache()
	start := time.Now()
	pr := newProgress(os.Stderr, "priming "+*image, sizeOf(img), *bar)
	st, err := dedupe.PrimeWith(ctx, store, img, dedupe.PrimeOptions{Progress: func(s dedupe.PrimeStats) { pr.update(s.Bytes) }})
	pr.finish(st.Bytes)
	if err != nil {
		return fmt.Errorf("proxy prime %s: %w", *image, err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("proxy prime: save cache: %w", err)
	}
	fmt.Printf("primed %s from %s: %s read, %d chunks, %s of zeros skipped, %s\n", *cache, *image,
		units.FormatSize(st.Bytes), st.Chunks, units.FormatSize(st.ZeroBytes), time.Since(start).Round(time.Millisecond))
	return nil
}
