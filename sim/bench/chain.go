package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aimwan/aimwan/reports"
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
	fpSrc    string // source edge's fingerprint
	fpDst    string // destination edge's fingerprint
	vols     []volume
	dst      *daemon
	proxyDst *daemon
	link     *daemon
	proxySrc *daemon
	src      *daemon
	noHints  bool // the proxies get no --link-rate/--rtt
}

func newChain(cfg Config, vols []volume) (*chain, error) {
	p, err := freePorts(12)
	if err != nil {
		return nil, err
	}
	c := &chain{cfg: cfg, work: filepath.Join(cfg.Out, "work"), logs: filepath.Join(cfg.Out, "logs"), vols: vols}
	c.a = addrs{dstListen: p[0], dstControl: p[1], dstMetrics: p[2], wan: p[3], dstProxyMetrics: p[4],
		link: p[5], linkMetrics: p[6], lan: p[7], srcProxyMetrics: p[8], nbd: p[9], srcControl: p[10], srcMetrics: p[11]}
	for _, d := range []string{c.work, c.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	return c, nil
}

// keygen makes the two proxy identities.
func (c *chain) keygen(ctx context.Context) error {
	var err error
	if c.fpSrc, err = c.keygenOne(ctx, filepath.Join(c.work, "key-src")); err != nil {
		return err
	}
	c.fpDst, err = c.keygenOne(ctx, filepath.Join(c.work, "key-dst"))
	return err
}

func (c *chain) keygenOne(ctx context.Context, dir string) (string, error) {
	out, err := c.oneShot(ctx, "keygen", "--dir", dir)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", fmt.Errorf("bench: keygen --dir %s printed nothing", dir)
	}
	return f[len(f)-1], nil
}

// oneShot runs an aimwan subcommand to completion (at most 10 minutes) and
// returns its combined output.
func (c *chain) oneShot(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.cfg.Bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("bench: aimwan %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// prime loads image into the destination edge's chunk store (before the
// edge starts).
func (c *chain) prime(ctx context.Context, image string) (string, error) {
	out, err := c.oneShot(ctx, "proxy", "prime", "--cache", c.cachePath(), "--image", image)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1], err // the summary; log lines come first
}

func (c *chain) cachePath() string { return filepath.Join(c.work, "cache") }

// start runs every daemon, the proxies in mode, and waits until each
// listens.
func (c *chain) start(ctx context.Context, mode string) error {
	var err error
	dstArgs := []string{"dst", "--node", nameDst, "--listen", c.a.dstListen, "--control", c.a.dstControl,
		"--metrics", c.a.dstMetrics, "--record", c.cfg.Out, "--buffer", filepath.Join(c.work, "dst-buffer"),
		"--snapshots", filepath.Join(c.work, "dst-snapshots")}
	for _, v := range c.vols {
		dstArgs = append(dstArgs, "--volume", v.name+"="+v.dstPath+",create")
	}
	if c.dst, err = startDaemon(c.cfg.Bin, c.logs, nameDst, dstArgs...); err != nil {
		return err
	}
	if err := waitTCP(ctx, c.a.dstListen, c.dst, 30*time.Second); err != nil {
		return err
	}
	if c.proxyDst, err = startDaemon(c.proxyBin(), c.logs, nameProxyDst, c.proxyDstArgs(mode)...); err != nil {
		return err
	}
	if err := waitTCP(ctx, c.a.dstProxyMetrics, c.proxyDst, 30*time.Second); err != nil {
		return err
	}
	if !c.cfg.NoLink {
		if c.link, err = startDaemon(c.cfg.Bin, c.logs, nameLink, c.linkArgs()...); err != nil {
			return err
		}
		if err := waitTCP(ctx, c.a.linkMetrics, c.link, 30*time.Second); err != nil {
			return err
		}
	}
	if c.proxySrc, err = startDaemon(c.proxyBin(), c.logs, nameProxySrc, c.proxySrcArgs(mode)...); err != nil {
		return err
	}
	if err := waitTCP(ctx, c.a.lan, c.proxySrc, 30*time.Second); err != nil {
		return err
	}
	srcArgs := []string{"src", "--node", nameSrc, "--nbd", c.a.nbd, "--push", c.a.lan, "--control", c.a.srcControl,
		"--metrics", c.a.srcMetrics, "--record", c.cfg.Out, "--buffer", filepath.Join(c.work, "src-buffer")}
	for _, v := range c.vols {
		srcArgs = append(srcArgs, "--volume", fmt.Sprintf("%s=%s,size=%d", v.name, v.srcPath, v.size))
	}
	if c.src, err = startDaemon(c.cfg.Bin, c.logs, nameSrc, srcArgs...); err != nil {
		return err
	}
	if err := waitTCP(ctx, c.a.nbd, c.src, 30*time.Second); err != nil {
		return err
	}
	return waitTCP(ctx, c.a.srcMetrics, c.src, 30*time.Second)
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
	if !c.noHints {
		args = []string{"--link-rate", rateArg(c.cfg.Rate), "--rtt", max(c.cfg.RTT, time.Millisecond).String()}
	}
	return append(args, c.cfg.ProxyArgs...)
}

func (c *chain) proxyDstArgs(mode string) []string {
	return append([]string{"proxy", "--node", nameProxyDst, "--mode", mode, "--wan-listen", c.a.wan,
		"--lan-forward", c.a.dstListen, "--key", filepath.Join(c.work, "key-dst"), "--peer-fp", c.fpSrc,
		"--cache", c.cachePath(), "--metrics", c.a.dstProxyMetrics, "--record", c.cfg.Out}, c.windowArgs()...)
}

func (c *chain) proxySrcArgs(mode string) []string {
	return append([]string{"proxy", "--node", nameProxySrc, "--mode", mode, "--lan-listen", c.a.lan,
		"--wan-peer", c.wanPeer(), "--key", filepath.Join(c.work, "key-src"), "--peer-fp", c.fpDst,
		"--metrics", c.a.srcProxyMetrics, "--record", c.cfg.Out}, c.windowArgs()...)
}

func (c *chain) linkArgs() []string {
	args := []string{"sim", "link", "--listen", c.a.link, "--to", c.a.wan, "--rate", rateArg(c.cfg.Rate),
		"--rtt", c.cfg.RTT.String(), "--metrics", c.a.linkMetrics}
	if c.cfg.Cross > 0 {
		args = append(args, "--cross", rateArg(c.cfg.Cross))
	}
	if c.cfg.Loss > 0 {
		args = append(args, "--loss", strconv.FormatFloat(c.cfg.Loss, 'g', -1, 64))
	}
	return args
}

// rateArg writes a rate in bytes per second as the daemons' flags take it.
func rateArg(bps float64) string { return fmt.Sprintf("%gKB/s", bps/1000) }

// switchMode restarts both proxies in mode (SIGTERM: nothing is lost, src
// keeps every unacknowledged file) and returns the CPU time each used.
func (c *chain) switchMode(ctx context.Context, mode string) (srcCPU, dstCPU time.Duration, err error) {
	srcCPU = c.proxySrc.stop(15 * time.Second)
	if dstCPU, err = c.proxyDst.restart(c.proxyDstArgs(mode)); err != nil {
		return srcCPU, dstCPU, err
	}
	if err := waitTCP(ctx, c.a.dstProxyMetrics, c.proxyDst, 30*time.Second); err != nil {
		return srcCPU, dstCPU, err
	}
	if _, err := c.proxySrc.restart(c.proxySrcArgs(mode)); err != nil {
		return srcCPU, dstCPU, err
	}
	return srcCPU, dstCPU, waitTCP(ctx, c.a.lan, c.proxySrc, 30*time.Second)
}

// daemons lists the running daemons, source side first.
func (c *chain) daemons() []*daemon {
	var out []*daemon
	for _, d := range []*daemon{c.src, c.proxySrc, c.link, c.proxyDst, c.dst} {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// names lists the running daemons, source side first.
func (c *chain) names() string {
	var n []string
	for _, d := range c.daemons() {
		n = append(n, d.name)
	}
	return strings.Join(n, " → ")
}

// stop ends every daemon (SIGTERM, then SIGKILL after 15 s), source side
// first, and returns the CPU time each used.
func (c *chain) stop() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, d := range c.daemons() {
		out[d.name] = d.stop(15 * time.Second)
	}
	return out
}

// exitedDaemon returns a daemon that ended on its own, if any.
func (c *chain) exitedDaemon() *daemon {
	for _, d := range c.daemons() {
		if d.exited() {
			return d
		}
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
	rec, err := reports.NewRecorder(reports.RecorderConfig{Dir: c.cfg.Out, Daemon: nameLink,
		Gatherer: newScraper(c.a.linkMetrics), Logger: c.cfg.Logger})
	if err != nil {
		return fmt.Errorf("bench: link recorder: %w", err)
	}
	return rec.Serve(ctx)
}
