package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/aimwan/aimwan/dedupe"
	"github.com/aimwan/aimwan/internal/units"
	"github.com/aimwan/aimwan/proxy"
)

func init() {
	register(command{Name: "proxy", Summary: "edge proxy: LAN push <-> dedupe <-> QUIC WAN, either role (prime: warm the cache)", Run: runProxy})
}

// proxyFile is the YAML form of a proxy's configuration.
type proxyFile struct {
	Node        string   `yaml:"node"`
	Mode        string   `yaml:"mode"`        // optimize | passthrough
	LANListen   string   `yaml:"lan_listen"`  // source edge: where src pushes
	WANPeer     string   `yaml:"wan_peer"`    // source edge: the destination edge (UDP host:port)
	WANListen   string   `yaml:"wan_listen"`  // destination edge: QUIC listen address
	LANForward  string   `yaml:"lan_forward"` // destination edge: dst's push address
	Key         string   `yaml:"key"`         // identity dir (aimwan keygen)
	PeerFP      []string `yaml:"peer_fp"`     // pinned WAN peer fingerprints (the other proxy)
	LANPeerFP   []string `yaml:"lan_peer_fp"` // pinned LAN peer fingerprints (src at the source edge, dst at the destination edge)
	MaxConns    int      `yaml:"max_conns"`   // source edge: LAN push connections at once
	Cache       string   `yaml:"cache"`       // chunk store dir (destination edge)
	CacheSize   string   `yaml:"cache_size"`  // chunk store capacity (disk)
	Metrics     string   `yaml:"metrics"`
	Record      string   `yaml:"record"`
	Schedule    string   `yaml:"schedule"`      // schedule file, or inline rules separated by ';'
	Conns       int      `yaml:"conns"`         // QUIC connections to the peer (0: adaptive)
	MaxWANConns int      `yaml:"max_wan_conns"` // ceiling of the adaptive number of QUIC connections
	LinkRate    string   `yaml:"link_rate"`     // WAN bottleneck, sizes the windows
	RTT         string   `yaml:"rtt"`           // WAN round trip, sizes the windows
	Level       string   `yaml:"level"`         // auto | fastest | default | better | best | max
	MaxMemory   string   `yaml:"max_memory"`    // source edge: bytes of files held at once
	MissWait    string   `yaml:"miss_wait"`     // destination edge: wait for files still arriving before asking back
}

func runProxy(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "prime" {
		return runProxyPrime(ctx, args[1:])
	}
	f, err := proxyFlags(args)
	if err != nil {
		return err
	}
	cfg, err := proxyConfig(f)
	if err != nil {
		return err
	}
	proxyMemoryLimit(cfg)
	n, err := proxy.NewNode(cfg)
	if errors.Is(err, proxy.ErrConfig) {
		return usagef("proxy: %v", err)
	}
	if err != nil {
		return err
	}
	return n.Serve(ctx)
}

// proxyMemoryLimit sets the Go runtime's soft memory limit (unless
// GOMEMLIMIT does) to proxy.MemoryLimit: at the source edge what the
// 512 MiB budget leaves once libzstd's context and the memory outside the
// Go heap are counted (more with a larger --max-memory), 384 MiB at the
// destination edge, so the garbage collector keeps the resident memory
// near what is live instead of letting it double. The chunk store's memory
// does not grow with its capacity.
func proxyMemoryLimit(cfg proxy.Config) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(proxy.MemoryLimit(cfg.LANListen != "" || cfg.WANPeer != "", cfg.MaxMemory))
}

// proxyFlags reads --config and the flags (flags win).
func proxyFlags(args []string) (proxyFile, error) {
	fs := newFlagSet("proxy", "(--lan-listen ADDR --wan-peer ADDR | --wan-listen ADDR --lan-forward ADDR) --key DIR --peer-fp FP --lan-peer-fp FP [flags]\n"+
		"       aimwan proxy prime --cache DIR --image PATH")
	cfgPath := fs.String("config", "", "YAML config `file` (flags override it)")
	var fps multiFlag
	fs.Var(&fps, "peer-fp", "pinned WAN peer fingerprint `FP`: the other proxy's (repeatable or comma-separated; from aimwan keygen)")
	lanFPs := fpFlag(fs, "lan-peer-fp", "pinned LAN peer fingerprint `FP`: src's at the source edge, dst's at the destination edge (repeatable or comma-separated)")
	conns := fs.Int("conns", 0, "fixed number of QUIC connections to the peer (default: adaptive, more while their congestion windows hold the pace back)")
	maxWANConns := fs.Int("max-wan-conns", 0, "most QUIC connections the adaptive pool opens (default 64)")
	maxConns := fs.Int("max-conns", 0, "source edge: LAN push connections served at once (default 256, at most 64 from one host)")
	str := map[string]*string{
		"node":        fs.String("node", "", "node name in hellos"),
		"mode":        fs.String("mode", "", "optimize (dedupe + zstd, default) or passthrough (raw bytes)"),
		"lan-listen":  fs.String("lan-listen", "", "source edge: push listen `ADDR` for src (default "+proxy.DefaultLANListen+")"),
		"wan-peer":    fs.String("wan-peer", "", "source edge: destination edge's UDP `ADDR`"),
		"wan-listen":  fs.String("wan-listen", "", "destination edge: QUIC (UDP) listen `ADDR` (default "+proxy.DefaultWANListen+")"),
		"lan-forward": fs.String("lan-forward", "", "destination edge: dst's push `ADDR` (default "+proxy.DefaultLANForward+")"),
		"key":         fs.String("key", "", "identity `DIR` made by aimwan keygen"),
		"cache":       fs.String("cache", "", "chunk store `DIR` (persisted, may be wiped; without it a temporary folder, removed at exit)"),
		"cache-size":  fs.String("cache-size", "", "chunk store capacity `SIZE` on disk, e.g. 200GiB (default: half the free space of its file system, at most 32GiB)"),
		"metrics":     fs.String("metrics", "", "Prometheus `ADDR` or off (default "+proxy.DefaultSourceMetrics+" / "+proxy.DefaultDestMetrics+")"),
		"record":      fs.String("record", "", "record metrics as JSONL into `DIR`"),
		"schedule":    fs.String("schedule", "", "WAN rate schedule: a `FILE`, or inline rules separated by ';' (docs/deployment.md)"),
		"link-rate":   fs.String("link-rate", "", "WAN bottleneck `RATE`, a hint: sizes the QUIC windows and the first pace (default: measured; windows sized for 100mbit)"),
		"rtt":         fs.String("rtt", "", "WAN round-trip `DURATION`, a hint that sizes the QUIC windows (default 50ms; the RTT is measured)"),
		"level":       fs.String("level", "", "literal compression: auto (default), fastest, default, better, best, max (libzstd -19; cgo builds)"),
		"max-memory":  fs.String("max-memory", "", "`SIZE` of files held at once (default 96MiB at the source edge, 256MiB at the destination edge)"),
		"miss-wait":   fs.String("miss-wait", "", "destination edge: at most this `DURATION` a file waits for the files sent before it, still arriving, to be decoded first (default 10m; the wait ends when they are done; negative: never wait)"),
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
	if flagWasSet(fs, "max-conns") {
		f.MaxConns = *maxConns
	}
	if flagWasSet(fs, "max-wan-conns") {
		f.MaxWANConns = *maxWANConns
	}
	if len(*lanFPs) > 0 {
		f.LANPeerFP = *lanFPs
	}
	if len(fps) > 0 {
		f.PeerFP = nil
		for _, s := range fps {
			f.PeerFP = append(f.PeerFP, splitList(s)...)
		}
	}
	return f, nil
}

// proxyConfig turns the file form into a proxy.Config: it loads the
// identity and parses fingerprints, sizes, rates and durations. The node
// checks the rest (role, schedule, cache) itself.
func proxyConfig(f proxyFile) (proxy.Config, error) {
	c := proxy.Config{Node: f.Node, LANListen: f.LANListen, WANPeer: f.WANPeer, WANListen: f.WANListen,
		LANForward: f.LANForward, Schedule: f.Schedule, Cache: f.Cache, Metrics: f.Metrics, Record: f.Record,
		Logger: slog.Default().With("daemon", "proxy")}
	var err error
	if c.Mode, err = proxy.ParseMode(f.Mode); err != nil {
		return c, usagef("proxy: %v", err)
	}
	if c.Identity, err = loadKey("proxy", f.Key); err != nil {
		return c, err
	}
	if c.Pins, err = loadPins("proxy", "peer-fp", "the other proxy (the WAN peer)", f.PeerFP); err != nil {
		return c, err
	}
	lanPeer := "src (at the source edge) or dst (at the destination edge)"
	if c.LANPins, err = loadPins("proxy", "lan-peer-fp", lanPeer, f.LANPeerFP); err != nil {
		return c, err
	}
	if f.MaxConns < 0 {
		return c, usagef("proxy: --max-conns %d: want a positive number", f.MaxConns)
	}
	c.MaxConns = f.MaxConns
	c.Transport.Conns = f.Conns
	if f.MaxWANConns < 0 {
		return c, usagef("proxy: --max-wan-conns %d: want a positive number", f.MaxWANConns)
	}
	c.Transport.MaxConns = f.MaxWANConns
	if f.LinkRate != "" {
		if c.Transport.LinkRate, err = units.ParseRate(f.LinkRate); err != nil {
			return c, usagef("proxy: --link-rate: %v", err)
		}
	}
	if f.RTT != "" {
		if c.Transport.RTT, err = time.ParseDuration(f.RTT); err != nil || c.Transport.RTT <= 0 {
			return c, usagef("proxy: --rtt %q: want a positive duration such as 40ms", f.RTT)
		}
	}
	if f.Level != "" && f.Level != "auto" {
		if c.Level, err = dedupe.ParseLevel(f.Level); err != nil {
			return c, usagef("proxy: --level: %v", err)
		}
	}
	if c.MaxMemory, err = optSize("max-memory", f.MaxMemory); err != nil {
		return c, err
	}
	if c.CacheSize, err = optSize("cache-size", f.CacheSize); err != nil {
		return c, err
	}
	if f.MissWait != "" {
		if c.MissWait, err = time.ParseDuration(f.MissWait); err != nil {
			return c, usagef("proxy: --miss-wait %q: %v", f.MissWait, err)
		}
	}
	return c, nil
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
	cacheSize, err := optSize("cache-size", *size)
	if err != nil {
		return err
	}
	img, err := os.Open(*image)
	if err != nil {
		return fmt.Errorf("proxy prime: %w", err)
	}
	defer img.Close()
	start := time.Now()
	pr := newProgress(os.Stderr, "priming "+*image, sizeOf(img), *bar)
	st, err := proxy.Prime(ctx, *cache, cacheSize, img, slog.Default().With("daemon", "proxy-prime"),
		func(s dedupe.PrimeStats) { pr.update(s.Bytes) })
	pr.finish(st.Bytes)
	if err != nil {
		return fmt.Errorf("proxy prime %s: %w", *image, err)
	}
	fmt.Printf("primed %s from %s: %s read, %d chunks, %s of zeros skipped, %s\n", *cache, *image,
		units.FormatSize(st.Bytes), st.Chunks, units.FormatSize(st.ZeroBytes), time.Since(start).Round(time.Millisecond))
	return nil
}
