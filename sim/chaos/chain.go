package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
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

	src, proxySrc, linkProc, proxyDst, dst *proc

	nbdAddr, srcControl           string
	lanAddr, wanAddr, linkAddr    string
	proxySrcMetrics, proxyDstMetr string
	linkMetrics                   string
	dstListen, dstControl         string
	srcImages, dstImages          map[string]string // volume -> image path
	snapshots, cache              string
	disk                          string // a tmpfs holding dst's buffer, when mounted ("" if not)
	srcKey, dstKey, srcFP, dstFP  string
}

// newChain lays out the work folder, makes the proxies' identities and
// picks free ports; nothing runs yet.
func newChain(ctx context.Context, cfg Config, dir string, linkFlags map[string]bool, disk string) (*chain, error) {
	c := &chain{cfg: cfg, dir: dir, link: linkFlags != nil && !cfg.Direct, linkFlags: linkFlags, direct: cfg.Direct, srcImages: map[string]string{}, dstImages: map[string]string{},
		snapshots: filepath.Join(dir, "dst", "snapshots"), cache: filepath.Join(dir, "proxy-dst", "cache"),
		srcKey: filepath.Join(dir, "proxy-src", "key"), dstKey: filepath.Join(dir, "proxy-dst", "key"), disk: disk}
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
	var err error
	if c.srcFP, err = c.keygen(ctx, c.srcKey); err != nil {
		return nil, err
	}
	if c.dstFP, err = c.keygen(ctx, c.dstKey); err != nil {
		return nil, err
	}
	tcp := []*string{&c.nbdAddr, &c.srcControl, &c.lanAddr, &c.proxySrcMetrics, &c.proxyDstMetr, &c.dstListen, &c.dstControl, &c.linkMetrics}
	for _, p := range tcp {
		if *p, err = freeTCP(); err != nil {
			return nil, err
		}
	}
	if c.wanAddr, err = freeUDP(); err != nil {
		return nil, err
	}
	if c.linkAddr, err = freeUDP(); err != nil {
		return nil, err
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

// keygen makes an identity in dir and returns its fingerprint (the last
// word keygen prints).
func (c *chain) keygen(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.cfg.Bin, "keygen", "--dir", dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("chaos: aimwan keygen --dir %s: %w\n%s", dir, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", fmt.Errorf("chaos: aimwan keygen printed nothing")
	}
	return f[len(f)-1], nil
}

func (c *chain) newProc(name string, args []string, ready ...string) *proc {
	return &proc{name: name, bin: c.cfg.Bin, log: filepath.Join(c.dir, "logs", name+".log"), args: args, ready: ready}
}

func (c *chain) makeProcs() {
	c.dst = c.newProc("dst", c.dstArgs(""), c.dstListen, c.dstControl)
	if c.direct {
		c.src = c.newProc("src", c.srcArgs(""), c.nbdAddr, c.srcControl)
		return
	}
	c.proxyDst = c.newProc("proxy-dst", []string{"proxy", "--wan-listen", c.wanAddr, "--lan-forward", c.dstListen,
		"--mode", c.cfg.Mode, "--key", c.dstKey, "--peer-fp", c.srcFP, "--cache", c.cache,
		"--metrics", c.proxyDstMetr, "--rtt", linkRTT, "--link-rate", linkRate}, c.proxyDstMetr)
	peer := c.wanAddr
	if c.link {
		peer = c.linkAddr
		ready := []string{c.linkMetrics}
		if !c.linkFlags["metrics"] {
			ready = []string{c.linkAddr} // the relay listens on TCP too
		}
		c.linkProc = c.newProc("link", c.linkArgs(""), ready...)
	}
	c.proxySrc = c.newProc("proxy-src", []string{"proxy", "--lan-listen", c.lanAddr, "--wan-peer", peer,
		"--mode", c.cfg.Mode, "--key", c.srcKey, "--peer-fp", c.dstFP, "--metrics", c.proxySrcMetrics,
		"--rtt", linkRTT, "--link-rate", linkRate}, c.lanAddr, c.proxySrcMetrics)
	c.src = c.newProc("src", c.srcArgs(""), c.nbdAddr, c.srcControl)
}

// srcArgs are src's arguments, with a buffer limit when limit is not "".
func (c *chain) srcArgs(limit string) []string {
	push := c.lanAddr
	if c.direct {
		push = c.dstListen
	}
	a := []string{"src", "--node", "chaos-src", "--buffer", filepath.Join(c.dir, "src", "buffer"),
		"--nbd", c.nbdAddr, "--push", push, "--control", c.srcControl, "--metrics", "off",
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

// dstArgs are dst's arguments, with a buffer limit when limit is not "".
func (c *chain) dstArgs(limit string) []string {
	buffer := filepath.Join(c.dir, "dst", "buffer")
	if c.disk != "" {
		buffer = filepath.Join(c.disk, "buffer")
	}
	a := []string{"dst", "--node", "chaos-dst", "--listen", c.dstListen, "--control", c.dstControl,
		"--metrics", "off", "--buffer", buffer, "--snapshots", c.snapshots,
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

// procs lists the daemons in start order (destination first).
func (c *chain) procs() []*proc {
	var ps []*proc
	for _, p := range []*proc{c.dst, c.proxyDst, c.linkProc, c.proxySrc, c.src} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// drainer is the daemon that, frozen, stops the source buffer from
// draining: the source edge, or dst when src pushes straight to it.
func (c *chain) drainer() *proc {
	if c.direct {
		return c.dst
	}
	return c.proxySrc
}

// start starts every daemon, destination first.
func (c *chain) start(ctx context.Context) error {
	for _, p := range c.procs() {
		if err := p.start(ctx); err != nil {
			return fmt.Errorf("chaos: %w", err)
		}
	}
	return nil
}

// stopAll ends every daemon (SIGTERM, then SIGKILL).
func (c *chain) stopAll() {
	ps := c.procs()
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].thaw()
		ps[i].stop()
	}
}

// crashed returns the daemons that exited without being asked to.
func (c *chain) crashed() []*proc {
	var out []*proc
	for _, p := range c.procs() {
		if p.crashed() {
			out = append(out, p)
		}
	}
	return out
}

// restart ends p with SIGKILL, waits down, and starts it again.
func restart(ctx context.Context, p *proc, down time.Duration) error {
	p.kill()
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	return p.start(ctx)
}
