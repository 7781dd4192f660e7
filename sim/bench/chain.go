package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// Daemon names: they name the recordings (<Out>/<name>.jsonl) and logs.
const (
	nameSrc      = "src"
	nameDst      = "dst"
	nameProxySrc = "proxy-src"
	nameProxyDst = "proxy-dst"
	nameLink     = "link"
)

// addrs are the loopback addresses of the chain.
type addrs struct {
	dstListen, dstControl, dstMetrics string
	wan, dstProxyMetrics              string // destination edge: QUIC (UDP) listen, metrics
	link, linkMetrics                 string // link simulator: listen (UDP+TCP), metrics
	lan, srcProxyMetrics              string // source edge: push listen, metrics
	nbd, srcControl, srcMetrics       string
}

// volume is one replicated volume: its image at the source and the
// destination.
type volume struct {
	name    string
	size    int64
	srcPath string
	dstPath string
}

// chain is the running set of daemons.
type chain struct {
	cfg      Config
	work     string // images, buffers, caches, identities
	logs     string // daemon logs
	a        addrs
	fps      map[string]string // daemon name -> its identity's fingerprint
	vols     []volume
	procs    *procs.Chain // in start order: dst, proxy-dst, link, proxy-src, src
	proxyDst *procs.Proc
	proxySrc *procs.Proc
	noHints  bool // the proxies get no --link-rate/--rtt
}

// stopWait is how long a daemon gets to end after SIGTERM.
const stopWait = 15 * time.Second

func newChain(cfg Config, vols []volume) (*chain, error) {
	p, err := procs.FreePorts(12)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	c := &chain{cfg: cfg, work: filepath.Join(cfg.Out, "work"), logs: filepath.Join(cfg.Out, "logs"), vols: vols}
	c.a = addrs{dstListen: p[0], dstControl: p[1], dstMetrics: p[2], wan: p[3], dstProxyMetrics: p[4],
		link: p[5], linkMetrics: p[6], lan: p[7], srcProxyMetrics: p[8], nbd: p[9], srcControl: p[10], srcMetrics: p[11]}
	if err := os.MkdirAll(c.work, 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if c.procs, err = procs.New(cfg.Bin, c.logs); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	c.procs.StopWait = stopWait
	return c, nil
}

// keygen makes an identity for each daemon: every leg of the chain is
// mutual TLS with pinned fingerprints, as an operator runs it.
func (c *chain) keygen(ctx context.Context) error {
	c.fps = map[string]string{}
	for _, d := range []string{nameSrc, nameProxySrc, nameProxyDst, nameDst} {
		fp, err := procs.Keygen(ctx, c.cfg.Bin, c.keyDir(d))
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		c.fps[d] = fp
	}
	return nil
}

// keyDir is the identity folder of a daemon.
func (c *chain) keyDir(daemon string) string { return filepath.Join(c.work, "key-"+daemon) }

// prime loads image into the destination edge's chunk store (before the
// edge starts).
func (c *chain) prime(ctx context.Context, image string) (string, error) {
	out, err := procs.Run(ctx, c.cfg.Bin, 10*time.Minute, "proxy", "prime", "--cache", c.cachePath(), "--image", image)
	if err != nil {
		err = fmt.Errorf("bench: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1], err // the summary; log lines come first
}

func (c *chain) cachePath() string { return filepath.Join(c.work, "cache") }

// start runs every daemon, the proxies in mode, each once the one before it
// listens (the destination side first).
func (c *chain) start(ctx context.Context, mode string) error {
	dstArgs := []string{"dst", "--node", nameDst, "--listen", c.a.dstListen, "--control", c.a.dstControl,
		"--metrics", c.a.dstMetrics, "--record", c.cfg.Out, "--buffer", filepath.Join(c.work, "dst-buffer"),
		"--snapshots", filepath.Join(c.work, "dst-snapshots"), "--key", c.keyDir(nameDst), "--peer-fp", c.fps[nameProxyDst]}
	for _, v := range c.vols {
		dstArgs = append(dstArgs, "--volume", v.name+"="+v.dstPath+",create")
	}
	c.procs.Add(nameDst, dstArgs, c.a.dstListen)
	c.proxyDst = c.procs.Add(nameProxyDst, c.proxyDstArgs(mode), c.a.dstProxyMetrics)
	c.proxyDst.Bin = c.proxyBin()
	if !c.cfg.NoLink {
		c.procs.Add(nameLink, c.linkArgs(), c.a.linkMetrics)
	}
	c.proxySrc = c.procs.Add(nameProxySrc, c.proxySrcArgs(mode), c.a.lan)
	c.proxySrc.Bin = c.proxyBin()
	srcArgs := []string{"src", "--node", nameSrc, "--nbd", c.a.nbd, "--push", c.a.lan, "--control", c.a.srcControl,
		"--metrics", c.a.srcMetrics, "--record", c.cfg.Out, "--buffer", filepath.Join(c.work, "src-buffer"),
		"--key", c.keyDir(nameSrc), "--peer-fp", c.fps[nameProxySrc]}
	for _, v := range c.vols {
		srcArgs = append(srcArgs, "--volume", fmt.Sprintf("%s=%s,size=%d", v.name, v.srcPath, v.size))
	}
	c.procs.Add(nameSrc, srcArgs, c.a.nbd, c.a.srcMetrics)
	if err := c.procs.Start(ctx); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// proxyBin is the binary the proxies run from: ProxyBin, or Bin.
func (c *chain) proxyBin() string {
	if c.cfg.ProxyBin != "" {
		return c.cfg.ProxyBin
	}
	return c.cfg.Bin
}

// wanPeer is where the source edge sends QUIC: the link, or the
// destination edge itself without a link.
func (c *chain) wanPeer() string {
	if c.cfg.NoLink {
		return c.a.wan
	}
	return c.a.link
}

// windowArgs tell the proxies the line they sit on (it sizes the QUIC
// flow-control windows), as an operator would.
func (c *chain) windowArgs() []string {
	var args []string
	switch {
	case c.noHints:
	case c.cfg.unlimited(): // no line to size them for: the proxies' default
		args = []string{"--rtt", max(c.cfg.RTT, time.Millisecond).String()}
	default:
		args = []string{"--link-rate", rateArg(c.cfg.Rate), "--rtt", max(c.cfg.RTT, time.Millisecond).String()}
	}
	return append(args, c.cfg.ProxyArgs...)
}

func (c *chain) proxyDstArgs(mode string) []string {
	return append([]string{"proxy", "--node", nameProxyDst, "--mode", mode, "--wan-listen", c.a.wan,
		"--lan-forward", c.a.dstListen, "--key", c.keyDir(nameProxyDst), "--peer-fp", c.fps[nameProxySrc],
		"--lan-peer-fp", c.fps[nameDst],
		"--cache", c.cachePath(), "--metrics", c.a.dstProxyMetrics, "--record", c.cfg.Out}, c.windowArgs()...)
}

func (c *chain) proxySrcArgs(mode string) []string {
	return append([]string{"proxy", "--node", nameProxySrc, "--mode", mode, "--lan-listen", c.a.lan,
		"--wan-peer", c.wanPeer(), "--key", c.keyDir(nameProxySrc), "--peer-fp", c.fps[nameProxyDst],
		"--lan-peer-fp", c.fps[nameSrc],
		"--metrics", c.a.srcProxyMetrics, "--record", c.cfg.Out}, c.windowArgs()...)
}

func (c *chain) linkArgs() []string {
	args := []string{"sim", "link", "--listen", c.a.link, "--to", c.a.wan, "--rate", rateArg(c.cfg.Rate),
		"--rtt", c.cfg.RTT.String(), "--metrics", c.a.linkMetrics}
	if c.cfg.Cross > 0 {
		args = append(args, "--cross", rateArg(c.cfg.Cross))
		if n := c.cfg.scale().CrossPacket; n > 0 {
			args = append(args, "--cross-packet", strconv.Itoa(n))
		}
	}
	if c.cfg.Loss > 0 {
		args = append(args, "--loss", strconv.FormatFloat(c.cfg.Loss, 'g', -1, 64))
	}
	return args
}

// rateArg writes a rate in bytes per second as the daemons' flags take it.
func rateArg(bps float64) string {
	if math.IsInf(bps, 1) {
		return "unlimited"
	}
	return fmt.Sprintf("%gKB/s", bps/1000)
}

// switchMode restarts both proxies in mode (SIGTERM: nothing is lost, src
// keeps every unacknowledged file) and returns the CPU time each used.
func (c *chain) switchMode(ctx context.Context, mode string) (srcCPU, dstCPU time.Duration, err error) {
	srcCPU = c.proxySrc.Stop()
	dstCPU = c.proxyDst.Stop()
	c.proxyDst.SetArgs(c.proxyDstArgs(mode))
	if err := c.proxyDst.Start(ctx); err != nil {
		return srcCPU, dstCPU, fmt.Errorf("bench: %w", err)
	}
	c.proxySrc.SetArgs(c.proxySrcArgs(mode))
	if err := c.proxySrc.Start(ctx); err != nil {
		return srcCPU, dstCPU, fmt.Errorf("bench: %w", err)
	}
	return srcCPU, dstCPU, nil
}

// names lists the daemons, source side first.
func (c *chain) names() string {
	ps := c.procs.Procs()
	n := make([]string, len(ps))
	for i, p := range ps {
		n[len(ps)-1-i] = p.Name
	}
	return strings.Join(n, " → ")
}

// stop ends every daemon (SIGTERM, then SIGKILL after 15 s), source side
// first, and returns the CPU time each used.
func (c *chain) stop() map[string]time.Duration { return c.procs.Stop() }

// crashedDaemon returns a daemon that ended on its own, if any.
func (c *chain) crashedDaemon() *procs.Proc {
	if cr := c.procs.Crashed(); len(cr) > 0 {
		return cr[0]
	}
	return nil
}

// recordLink records the link simulator's metrics into <Out>/link.jsonl
// from its /metrics (the bench scrapes it; the simulator needs no
// recorder of its own).
func (c *chain) recordLink(ctx context.Context) error {
	if c.cfg.NoLink {
		return nil
	}
	rec, err := metrics.NewRecorder(metrics.RecorderConfig{Dir: c.cfg.Out, Daemon: nameLink,
		Gatherer: newScraper(c.a.linkMetrics), Logger: c.cfg.Logger})
	if err != nil {
		return fmt.Errorf("bench: link recorder: %w", err)
	}
	return rec.Serve(ctx)
}
