package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// Volumes and group of the chain: two volumes in one consistency group.
var volumeNames = []string{"a", "b"}

const groupName = "g"

// Buffer settings of the chain: small journal files so a batch spans
// several, and the tiny limits of the buffer-full faults.
const (
	srcFileSize     = "128KiB"
	srcFileAge      = "200ms"
	srcTinyLimit    = "384KiB"
	dstTinyLimit    = "512KiB"
	linkRate        = "40mbit"
	linkRTT         = "4ms"
	impairedLoss    = "5%"
	impairedReorder = "20%"
	impairedDup     = "10%"
	noiseLoss       = "1%"
	noiseReorder    = "2%"
	noiseDup        = "2%"
)

// chain is the daemons of one run and where they keep their state.
type chain struct {
	cfg       Config
	dir       string
	link      bool            // a link simulator sits between the proxies
	direct    bool            // src pushes straight to dst (no proxies, no link)
	linkFlags map[string]bool // flags `aimwan sim link` has

	all                                    *procs.Chain // in start order: dst first
	src, proxySrc, linkProc, proxyDst, dst *procs.Proc

	nbdAddr, srcControl           string
	lanAddr, wanAddr, linkAddr    string
	proxySrcMetrics, proxyDstMetr string
	linkMetrics                   string
	dstListen, dstControl         string
	srcImages, dstImages          map[string]string // volume -> image path
	snapshots, cache              string
	disk                          string            // a tmpfs holding dst's buffer, when mounted ("" if not)
	keys, fps                     map[string]string // daemon -> identity folder, fingerprint
}

// newChain lays out the work folder, makes the proxies' identities and
// picks free ports; nothing runs yet.
func newChain(ctx context.Context, cfg Config, dir string, linkFlags map[string]bool, disk string) (*chain, error) {
	c := &chain{cfg: cfg, dir: dir, link: linkFlags != nil && !cfg.Direct, linkFlags: linkFlags, direct: cfg.Direct, srcImages: map[string]string{}, dstImages: map[string]string{},
		snapshots: filepath.Join(dir, "dst", "snapshots"), cache: filepath.Join(dir, "proxy-dst", "cache"),
		keys: map[string]string{}, fps: map[string]string{}, disk: disk}
	for _, d := range []string{"logs", "src", "dst", "proxy-src", "proxy-dst"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("chaos: work folder: %w", err)
		}
	}
	for _, v := range volumeNames {
		c.srcImages[v] = filepath.Join(dir, "src", v+".img")
		c.dstImages[v] = filepath.Join(dir, "dst", v+".img")
		// Made here, not by dst (no ",create"): a volume moved away must
		// make dst offline, not give it a new empty file.
		if err := makeSparse(c.dstImages[v], cfg.VolumeSize); err != nil {
			return nil, err
		}
	}
	// Every daemon has its identity and pins its neighbours: every leg is
	// mutual TLS, as an operator runs it.
	for _, d := range []string{"src", "dst", "proxy-src", "proxy-dst"} {
		c.keys[d] = filepath.Join(dir, d, "key")
		fp, err := procs.Keygen(ctx, cfg.Bin, c.keys[d])
		if err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		c.fps[d] = fp
	}
	ports, err := procs.FreePorts(10)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	for i, p := range []*string{&c.nbdAddr, &c.srcControl, &c.lanAddr, &c.proxySrcMetrics, &c.proxyDstMetr, &c.dstListen,
		&c.dstControl, &c.linkMetrics, &c.wanAddr, &c.linkAddr} {
		*p = ports[i]
	}
	if c.all, err = procs.New(cfg.Bin, filepath.Join(dir, "logs")); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	c.makeProcs()
	return c, nil
}

// makeSparse creates an empty sparse file of size bytes unless path exists.
func makeSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if os.IsExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("chaos: destination volume: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("chaos: destination volume: %w", err)
	}
	return nil
}

// makeProcs adds the daemons to the chain, the destination side first.
func (c *chain) makeProcs() {
	c.dst = c.all.Add("dst", c.dstArgs(""), c.dstListen, c.dstControl)
	if c.direct {
		c.src = c.all.Add("src", c.srcArgs(""), c.nbdAddr, c.srcControl)
		return
	}
	c.proxyDst = c.all.Add("proxy-dst", []string{"proxy", "--wan-listen", c.wanAddr, "--lan-forward", c.dstListen,
		"--mode", c.cfg.Mode, "--key", c.keys["proxy-dst"], "--peer-fp", c.fps["proxy-src"],
		"--lan-peer-fp", c.fps["dst"], "--cache", c.cache,
		"--metrics", c.proxyDstMetr, "--rtt", linkRTT, "--link-rate", linkRate}, c.proxyDstMetr)
	peer := c.wanAddr
	if c.link {
		peer = c.linkAddr
		ready := []string{c.linkMetrics}
		if !c.linkFlags["metrics"] {
			ready = []string{c.linkAddr} // the relay listens on TCP too
		}
		c.linkProc = c.all.Add("link", c.linkArgs(""), ready...)
	}
	c.proxySrc = c.all.Add("proxy-src", []string{"proxy", "--lan-listen", c.lanAddr, "--wan-peer", peer,
		"--mode", c.cfg.Mode, "--key", c.keys["proxy-src"], "--peer-fp", c.fps["proxy-dst"],
		"--lan-peer-fp", c.fps["src"], "--metrics", c.proxySrcMetrics,
		"--rtt", linkRTT, "--link-rate", linkRate}, c.lanAddr, c.proxySrcMetrics)
	c.src = c.all.Add("src", c.srcArgs(""), c.nbdAddr, c.srcControl)
}

// srcArgs are src's arguments, with a buffer limit when limit is not "".
func (c *chain) srcArgs(limit string) []string {
	push, next := c.lanAddr, "proxy-src"
	if c.direct {
		push, next = c.dstListen, "dst"
	}
	a := []string{"src", "--node", "chaos-src", "--buffer", c.srcBuffer(),
		"--key", c.keys["src"], "--peer-fp", c.fps[next], "--nbd", c.nbdAddr, "--push", push, "--control", c.srcControl, "--metrics", "off",
		"--file-size", srcFileSize, "--group", groupName + "=" + strings.Join(volumeNames, ",")}
	if c.cfg.Coalesce > 0 {
		a = append(a, "--coalesce", c.cfg.Coalesce.String())
	} else {
		a = append(a, "--file-age", srcFileAge)
	}
	for _, v := range volumeNames {
		a = append(a, "--volume", fmt.Sprintf("%s=%s,size=%d", v, c.srcImages[v], c.cfg.VolumeSize))
	}
	if limit != "" {
		a = append(a, "--buffer-limit", limit)
	}
	return a
}

// srcBuffer is src's buffer folder (where its control API token is).
func (c *chain) srcBuffer() string { return filepath.Join(c.dir, "src", "buffer") }

// dstBuffer is dst's buffer folder (where its control API token is).
func (c *chain) dstBuffer() string {
	if c.disk != "" {
		return filepath.Join(c.disk, "buffer")
	}
	return filepath.Join(c.dir, "dst", "buffer")
}

// dstArgs are dst's arguments, with a buffer limit when limit is not "".
func (c *chain) dstArgs(limit string) []string {
	sender := "proxy-dst"
	if c.direct {
		sender = "src"
	}
	a := []string{"dst", "--node", "chaos-dst", "--listen", c.dstListen, "--control", c.dstControl,
		"--key", c.keys["dst"], "--peer-fp", c.fps[sender],
		"--metrics", "off", "--buffer", c.dstBuffer(), "--snapshots", c.snapshots,
		"--group", groupName + "=" + strings.Join(volumeNames, ",")}
	for _, v := range volumeNames {
		a = append(a, "--volume", v+"="+c.dstImages[v])
	}
	if limit != "" {
		a = append(a, "--buffer-limit", limit)
	}
	return a
}

// linkArgs are the link simulator's arguments; impair is "" or one of the
// link fault kinds.
func (c *chain) linkArgs(impair string) []string {
	a := []string{"sim", "link", "--listen", c.linkAddr, "--to", c.wanAddr}
	for _, kv := range [][2]string{{"rate", linkRate}, {"rtt", linkRTT}, {"metrics", c.linkMetrics}, {"seed", fmt.Sprint(c.cfg.Seed)}} {
		if c.linkFlags[kv[0]] {
			a = append(a, "--"+kv[0], kv[1])
		}
	}
	value := map[string]string{LinkLoss: impairedLoss, LinkReorder: impairedReorder, LinkDuplicate: impairedDup}
	if !c.cfg.LinkNoise {
		if f := linkFlag(impair, c.linkFlags); f != "" {
			a = append(a, "--"+f, value[impair])
		}
		return a
	}
	noise := map[string]string{LinkLoss: noiseLoss, LinkReorder: noiseReorder, LinkDuplicate: noiseDup}
	for _, k := range linkFaults {
		v := noise[k]
		if k == impair {
			v = value[k]
		}
		if f := linkFlag(k, c.linkFlags); f != "" {
			a = append(a, "--"+f, v)
		}
	}
	return a
}

// drainer is the daemon that, frozen, stops the source buffer from
// draining: the source edge, or dst when src pushes straight to it.
func (c *chain) drainer() *procs.Proc {
	if c.direct {
		return c.dst
	}
	return c.proxySrc
}

// start starts every daemon, destination first, each once the one before
// it listens (none may be running).
func (c *chain) start(ctx context.Context) error {
	if err := c.all.Start(ctx); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// stopAll ends every daemon (SIGTERM, then SIGKILL), source side first.
func (c *chain) stopAll() { c.all.Stop() }

// crashed returns the daemons that exited without being asked to.
func (c *chain) crashed() []*procs.Proc { return c.all.Crashed() }

// restart ends p with SIGKILL, waits down, and starts it again.
func restart(ctx context.Context, p *procs.Proc, down time.Duration) error {
	p.Kill()
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	return p.Start(ctx)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
