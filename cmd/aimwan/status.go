package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/aimwan/aimwan/aimdst"
	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/metrics"
)

func init() {
	register(command{Name: "status", Summary: "one view of the whole chain: src, both proxies, dst (--watch, --json)", Run: runStatus})
}

// statusNode is how status reaches src or dst: its control API (with the
// token in its buffer, or a token file), its metrics, or the node's own
// YAML config (control address and buffer).
type statusNode struct {
	Control string `yaml:"control"`
	Metrics string `yaml:"metrics"`
	Buffer  string `yaml:"buffer"`
	Token   string `yaml:"token"`
	Config  string `yaml:"config"`
}

// statusProxy is a proxy edge: its metrics address.
type statusProxy struct {
	Metrics string `yaml:"metrics"`
}

// statusFile is the YAML form of aimwan status --config (docs/operations.md).
type statusFile struct {
	Src              statusNode  `yaml:"src"`
	SourceProxy      statusProxy `yaml:"source_proxy"`
	DestinationProxy statusProxy `yaml:"destination_proxy"`
	Dst              statusNode  `yaml:"dst"`
}

// statusOptions are the resolved settings of one aimwan status run.
type statusOptions struct {
	chain  statusFile
	watch  time.Duration // 0: once
	count  int           // redraws in watch mode (0: until interrupted)
	sample time.Duration // once: the window the proxies' rates are measured over
	json   bool
}

func statusFlags(fs *flag.FlagSet, f *statusFile) func() {
	type ref struct {
		name, what string
		into       *string
	}
	var refs []ref
	node := func(prefix, label string, n *statusNode) {
		refs = append(refs,
			ref{prefix + "-control", "control API `ADDR` of " + label, &n.Control},
			ref{prefix + "-metrics", "Prometheus `ADDR` of " + label + " (read when no control token is at hand)", &n.Metrics},
			ref{prefix + "-buffer", "buffer `DIR` of " + label + ", where its control token is", &n.Buffer},
			ref{prefix + "-token", "control token `FILE` of " + label, &n.Token},
			ref{prefix + "-config", "YAML config `FILE` of " + label + " (gives its control address and buffer)", &n.Config})
	}
	node("src", "the source node", &f.Src)
	refs = append(refs,
		ref{"source-proxy", "Prometheus `ADDR` of the source-edge proxy", &f.SourceProxy.Metrics},
		ref{"destination-proxy", "Prometheus `ADDR` of the destination-edge proxy", &f.DestinationProxy.Metrics})
	node("dst", "the destination node", &f.Dst)
	vals := make([]*string, len(refs))
	for i, r := range refs {
		vals[i] = fs.String(r.name, "", r.what)
	}
	return func() { // flags given override the YAML
		for i, r := range refs {
			if flagWasSet(fs, r.name) {
				*r.into = *vals[i]
			}
		}
	}
}

// watchFlag is --watch: a duration, or a bare number of seconds.
type watchFlag struct{ d *time.Duration }

func (w watchFlag) String() string {
	if w.d == nil {
		return "0s"
	}
	return w.d.String()
}

func (w watchFlag) Set(s string) error {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*w.d = time.Duration(n * float64(time.Second))
	} else if *w.d, err = time.ParseDuration(s); err != nil {
		return fmt.Errorf("want seconds or a duration (5, 5s, 1m): %w", err)
	}
	if *w.d < 0 {
		return fmt.Errorf("negative interval")
	}
	return nil
}

func statusConfig(args []string) (statusOptions, error) {
	fs := newFlagSet("status", "[--config FILE] [--src-control ADDR --src-buffer DIR] [--source-proxy ADDR] "+
		"[--destination-proxy ADDR] [--dst-control ADDR --dst-buffer DIR | --dst-metrics ADDR] [--watch N] [--json]")
	cfgPath := fs.String("config", "", "YAML `file` listing the chain's addresses (docs/operations.md); flags override it")
	var o statusOptions
	apply := statusFlags(fs, &o.chain)
	fs.Var(watchFlag{&o.watch}, "watch", "redraw every `N` seconds (or a duration: 2s, 1m) until interrupted")
	fs.IntVar(&o.count, "count", 0, "with --watch: stop after `N` screens (0: until interrupted)")
	fs.DurationVar(&o.sample, "sample", time.Second, "without --watch: measure the proxies' rates over this `window` (0: no rates)")
	fs.BoolVar(&o.json, "json", false, "print JSON (with --watch: one object a line)")
	if err := parseFlags(fs, args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("status: unexpected argument %q", fs.Arg(0))
	}
	if err := loadYAML(*cfgPath, &o.chain); err != nil {
		return o, err
	}
	apply()
	if o.count < 0 || o.sample < 0 {
		return o, usagef("status: --count and --sample must not be negative")
	}
	if n := &o.chain.Src; n.Config != "" {
		var f srcFile
		if err := loadYAML(n.Config, &f); err != nil {
			return o, err
		}
		n.Control, n.Metrics, n.Buffer = or(n.Control, f.Control), or(n.Metrics, f.Metrics), or(n.Buffer, f.Buffer)
	}
	if n := &o.chain.Dst; n.Config != "" {
		var f dstFile
		if err := loadYAML(n.Config, &f); err != nil {
			return o, err
		}
		n.Control, n.Metrics, n.Buffer = or(n.Control, f.Control), or(n.Metrics, f.Metrics), or(n.Buffer, f.Buffer)
	}
	o.chain.Src.Control = or(o.chain.Src.Control, aimsrc.DefaultControlAddr)
	o.chain.Dst.Control = or(o.chain.Dst.Control, dstDefaultControl)
	o.chain.Dst.Metrics = or(o.chain.Dst.Metrics, dstDefaultMetrics)
	o.chain.Src.Metrics = or(o.chain.Src.Metrics, aimsrc.DefaultMetricsAddr)
	return o, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (n statusNode) tokenFile() string {
	switch {
	case n.Token != "":
		return n.Token
	case n.Buffer != "":
		return ctlapi.TokenPath(n.Buffer)
	}
	return ""
}

func runStatus(ctx context.Context, args []string) error {
	o, err := statusConfig(args)
	if err != nil {
		return err
	}
	return runStatusTo(ctx, o, os.Stdout)
}

// runStatusTo draws the status once, or every o.watch until ctx ends or
// o.count screens are drawn.
func runStatusTo(ctx context.Context, o statusOptions, out io.Writer) error {
	c := newCollector(o.chain)
	if o.watch == 0 {
		if o.sample > 0 {
			c.collectProxies(ctx) // the first sample of the rates
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(o.sample):
			}
		}
		return drawStatus(out, c.collect(ctx), o.json, false)
	}
	t := time.NewTicker(o.watch)
	defer t.Stop()
	for i := 0; o.count == 0 || i < o.count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
		if err := drawStatus(out, c.collect(ctx), o.json, true); err != nil {
			return err
		}
	}
	return nil
}

func drawStatus(out io.Writer, v *chainView, asJSON, watch bool) error {
	if asJSON {
		enc := json.NewEncoder(out)
		if !watch {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(v)
	}
	if watch {
		fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear screen
	}
	printChain(out, v)
	return nil
}

// chainCollector reads the chain; it keeps the proxies' previous scrapes
// for their rates.
type chainCollector struct {
	f    statusFile
	hc   *http.Client
	mu   sync.Mutex
	prev map[string]*scrape // by metrics address
}

func newCollector(f statusFile) *chainCollector {
	return &chainCollector{f: f, hc: &http.Client{Timeout: 5 * time.Second}, prev: map[string]*scrape{}}
}

func (c *chainCollector) proxies() []proxyView {
	var ps []proxyView
	if a := c.f.SourceProxy.Metrics; a != "" {
		ps = append(ps, proxyView{Role: metrics.RoleSource, Metrics: a})
	}
	if a := c.f.DestinationProxy.Metrics; a != "" {
		ps = append(ps, proxyView{Role: metrics.RoleDestination, Metrics: a})
	}
	return ps
}

// collectProxies scrapes the proxies and fills their lines.
func (c *chainCollector) collectProxies(ctx context.Context) []proxyView {
	ps := c.proxies()
	var wg sync.WaitGroup
	for i := range ps {
		p := &ps[i]
		wg.Go(func() {
			s, err := fetchScrape(ctx, c.hc, p.Metrics)
			if err != nil {
				p.Error = err.Error()
				return
			}
			p.Up = true
			c.mu.Lock()
			prev := c.prev[p.Metrics]
			c.prev[p.Metrics] = s
			c.mu.Unlock()
			proxyFromScrape(p, s, prev)
		})
	}
	wg.Wait()
	return ps
}

// collect reads every node of the chain at once and builds the screen.
func (c *chainCollector) collect(ctx context.Context) *chainView {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v := &chainView{Time: time.Now()}
	var src *srcDoc
	var dst map[string]dstVol
	var wg sync.WaitGroup
	wg.Go(func() { v.Proxies = c.collectProxies(ctx) })
	wg.Go(func() { v.Source, src = c.collectSrc(ctx) })
	wg.Go(func() { v.Destination, dst = c.collectDst(ctx) })
	wg.Wait()
	v.volumes(src, dst)
	return v
}

func (c *chainCollector) collectSrc(ctx context.Context) (nodeView, *srcDoc) {
	n := c.f.Src
	nv := nodeView{Control: n.Control, Metrics: n.Metrics, Via: "control"}
	var doc srcDoc
	if tok := n.tokenFile(); tok != "" {
		cl := &aimsrc.Client{Addr: n.Control, TokenFile: tok, HTTP: c.hc}
		if err := cl.StatusInto(ctx, &doc); err != nil {
			nv.Error = err.Error()
			return nv, nil
		}
	} else {
		nv.Via = "metrics"
		s, err := fetchScrape(ctx, c.hc, n.Metrics)
		if err != nil {
			nv.Error = err.Error()
			return nv, nil
		}
		doc = srcDocFromMetrics(s)
	}
	nv.Up, nv.Node, nv.Link, nv.Paused = true, doc.Node, doc.Link, &doc.Paused
	return nv, &doc
}

func (c *chainCollector) collectDst(ctx context.Context) (nodeView, map[string]dstVol) {
	n := c.f.Dst
	nv := nodeView{Control: n.Control, Metrics: n.Metrics, Via: "control"}
	if tok := n.tokenFile(); tok != "" {
		st, err := aimdst.FetchStatus(ctx, n.Control, tok)
		if err != nil {
			nv.Error = err.Error()
			return nv, nil
		}
		nv.Up, nv.Node = true, st.Node
		return nv, dstVolsFromStatus(st)
	}
	nv.Via = "metrics"
	s, err := fetchScrape(ctx, c.hc, n.Metrics)
	if err != nil {
		nv.Error = err.Error()
		return nv, nil
	}
	nv.Up = true
	return nv, dstVolsFromMetrics(s)
}
