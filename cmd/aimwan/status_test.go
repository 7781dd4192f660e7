package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/transport/push"
)

// sourceEdge is a source-edge proxy's /metrics text at a moment (logical
// and wire counters given).
func sourceEdge(logical, wire float64, peerUp int) string {
	return `# TYPE aimwan_proxy_logical_bytes_total counter
aimwan_proxy_logical_bytes_total{role="source"} ` + ftoa(logical) + `
# TYPE aimwan_proxy_wire_bytes_total counter
aimwan_proxy_wire_bytes_total{role="source"} ` + ftoa(wire) + `
# TYPE aimwan_proxy_cache_hits_total counter
aimwan_proxy_cache_hits_total{role="source"} 75
# TYPE aimwan_proxy_cache_misses_total counter
aimwan_proxy_cache_misses_total{role="source"} 25
# TYPE aimwan_proxy_peer_up gauge
aimwan_proxy_peer_up{role="source"} ` + ftoa(float64(peerUp)) + `
# TYPE aimwan_proxy_peer_rtt_seconds gauge
aimwan_proxy_peer_rtt_seconds{conn="0",peer="10.0.0.2:7900",role="source"} 0.042
aimwan_proxy_peer_rtt_seconds{conn="1",peer="10.0.0.2:7900",role="source"} 0.031
# TYPE aimwan_proxy_store_bytes gauge
aimwan_proxy_store_bytes{role="source",store="chunks"} 1.048576e+06
aimwan_proxy_store_bytes{role="source",store="peer_index"} 9e+09
# TYPE aimwan_proxy_store_capacity_bytes gauge
aimwan_proxy_store_capacity_bytes{role="source",store="chunks"} 8.388608e+06
# TYPE aimwan_proxy_latency_seconds histogram
aimwan_proxy_latency_seconds_bucket{le="+Inf"} 3
aimwan_proxy_latency_seconds_sum 1
aimwan_proxy_latency_seconds_count 3
`
}

func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }

func mustScrape(t *testing.T, text string, at time.Time) *scrape {
	t.Helper()
	s, err := parseScrape(strings.NewReader(text), at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestProxyFromScrape: rates from two scrapes, reduction since start, the
// best RTT, cache hits and the chunk store (not the peer index); a counter
// that went back counts from zero.
func TestProxyFromScrape(t *testing.T) {
	t0 := time.Unix(1000, 0)
	prev := mustScrape(t, sourceEdge(10e6, 2e6, 1), t0)
	now := mustScrape(t, sourceEdge(30e6, 4e6, 1), t0.Add(2*time.Second))
	p := proxyView{Role: metrics.RoleSource, Metrics: "x", Up: true}
	proxyFromScrape(&p, now, prev)
	check := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	check("logical rate", p.LogicalRate, 10e6)
	check("wan rate", p.WANRate, 1e6)
	check("reduction", p.Reduction, 7.5)
	check("rtt", p.RTTSeconds, 0.031)
	check("hit ratio", p.CacheHitRatio, 0.75)
	check("cache bytes", p.CacheBytes, 1<<20)
	check("cache capacity", p.CacheCapacity, 8<<20)
	if p.PeerUp == nil || !*p.PeerUp {
		t.Errorf("peer up = %v", p.PeerUp)
	}
	restarted := mustScrape(t, sourceEdge(4e6, 1e6, 0), t0.Add(4*time.Second))
	p = proxyView{Role: metrics.RoleSource}
	proxyFromScrape(&p, restarted, now)
	check("rate after a restart", p.LogicalRate, 2e6)
	if p.PeerUp == nil || *p.PeerUp {
		t.Errorf("peer up = %v, want down", p.PeerUp)
	}
	p = proxyView{Role: metrics.RoleSource}
	proxyFromScrape(&p, now, nil)
	if p.LogicalRate != nil || p.WANRate != nil {
		t.Errorf("rates from one scrape: %v %v", p.LogicalRate, p.WANRate)
	}
	if _, err := parseScrape(strings.NewReader("aimwan_x{ 1\n"), t0); err == nil {
		t.Error("a malformed exposition parsed")
	}
}

// TestChainState: the state of each volume, the first rule that applies
// winning, and the reason shown with link down and destination offline.
func TestChainState(t *testing.T) {
	one := 1
	zero := 0
	down := &push.LinkState{State: push.LinkDown, Since: time.Now(), Error: "dial: refused"}
	up := &push.LinkState{State: push.LinkUp}
	f := false
	small, large := 4.0, 40.0
	tests := []struct {
		name    string
		src     *srcVolDoc
		link    *push.LinkState
		proxyUp bool
		peerUp  *bool
		dstUp   bool
		dst     *dstVol
		want    string
		errHas  string
	}{
		{"caught up", &srcVolDoc{}, up, true, nil, true, &dstVol{FilesWaiting: &zero}, chainCaughtUp, ""},
		{"replicating at src", &srcVolDoc{SrcDataBytes: 5}, up, true, nil, true, &dstVol{FilesWaiting: &zero}, chainReplicating, ""},
		{"replicating at dst", &srcVolDoc{}, up, true, nil, true, &dstVol{FilesWaiting: &one}, chainReplicating, ""},
		{"heartbeats on their way", &srcVolDoc{SrcDataBytes: 300, FilesWaiting: 1}, up, true, nil, true, &dstVol{FilesWaiting: &one, TimeLatency: &small}, chainCaughtUp, ""},
		{"behind", &srcVolDoc{SrcDataBytes: 300, FilesWaiting: 1}, up, true, nil, true, &dstVol{FilesWaiting: &one, TimeLatency: &large}, chainReplicating, ""},
		{"src's latency when dst has none", &srcVolDoc{SrcDataBytes: 300, FilesWaiting: 1, TimeLatency: &small}, up, true, nil, true, &dstVol{FilesWaiting: &one}, chainCaughtUp, ""},
		{"paused", &srcVolDoc{PausedBy: aimsrc.PausedByVolume, SrcDataBytes: 5}, down, true, nil, true, &dstVol{}, chainPaused, ""},
		{"initializing", &srcVolDoc{Init: struct {
			Running bool    `json:"running"`
			Percent float64 `json:"percent"`
			Error   string  `json:"error"`
		}{Running: true}, PausedBy: aimsrc.PausedByDestination}, up, true, nil, true, &dstVol{}, chainInitializing, ""},
		{"pull-ahead", &srcVolDoc{State: aimsrc.StatePullAhead}, down, true, nil, true, &dstVol{}, chainPullAhead, ""},
		{"link down at src", &srcVolDoc{SrcDataBytes: 5}, down, true, nil, true, &dstVol{}, chainLinkDown, "dial: refused"},
		{"proxy unreachable", &srcVolDoc{}, up, false, nil, true, &dstVol{}, chainLinkDown, "source proxy unreachable"},
		{"WAN down", &srcVolDoc{}, up, true, &f, true, &dstVol{}, chainLinkDown, "WAN session"},
		{"dst unreachable", &srcVolDoc{}, up, true, nil, false, nil, chainDstOffline, "dst: no route"},
		{"dst unreachable, src's link down", &srcVolDoc{}, down, true, nil, false, nil, chainDstOffline, "dst: no route"},
		{"dst unreachable over a WAN that is down", &srcVolDoc{}, down, true, &f, false, nil, chainLinkDown, "WAN session"},
		{"dst volume offline", &srcVolDoc{}, up, true, nil, true, &dstVol{Offline: true, State: "offline: disk gone"}, chainDstOffline, "offline: disk gone"},
		{"not at dst", &srcVolDoc{}, up, true, nil, true, nil, chainDstNotTracked, ""},
		{"no source", nil, nil, true, nil, true, &dstVol{}, chainUnknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &chainView{Source: nodeView{Up: tt.src != nil, Link: tt.link},
				Destination: nodeView{Up: tt.dstUp, Error: "no route"},
				Proxies:     []proxyView{{Role: metrics.RoleSource, Up: tt.proxyUp, PeerUp: tt.peerUp, Error: "refused"}}}
			dst := map[string]dstVol{}
			if tt.dst != nil {
				dst["v"] = *tt.dst
			}
			var src *srcDoc
			if tt.src != nil {
				tt.src.Name = "v"
				src = &srcDoc{Volumes: []srcVolDoc{*tt.src}}
			}
			c.volumes(src, dst)
			if len(c.Volumes) != 1 || c.Volumes[0].State != tt.want || !strings.Contains(c.Volumes[0].LastError, tt.errHas) {
				t.Fatalf("got %+v, want state %q with error %q", c.Volumes, tt.want, tt.errHas)
			}
		})
	}
}

// TestStatusConfig: the YAML lists the chain (flags override it), a
// node's own config gives its control address and buffer, a misspelt key
// is named with the one meant, and the source's token is required.
func TestStatusConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srcYAML := write("src.yaml", "buffer: /var/lib/aimwan/src\ncontrol: 127.0.0.1:7801\n")
	chain := write("chain.yaml", `
src:
  config: `+srcYAML+`
source_proxy:
  metrics: 127.0.0.1:9711
destination_proxy:
  metrics: 10.0.0.2:9712
dst:
  control: 10.0.0.2:7702
  token: /etc/aimwan/dst.token
`)
	o, err := statusConfig([]string{"--config", chain, "--destination-proxy", "10.0.0.3:9712", "--watch", "2", "--json"})
	if err != nil {
		t.Fatal(err)
	}
	c := o.chain
	if c.Src.Control != "127.0.0.1:7801" || c.Src.tokenFile() != ctlapi.TokenPath("/var/lib/aimwan/src") ||
		c.SourceProxy.Metrics != "127.0.0.1:9711" || c.DestinationProxy.Metrics != "10.0.0.3:9712" ||
		c.Dst.tokenFile() != "/etc/aimwan/dst.token" || c.Dst.Metrics != dstDefaultMetrics || o.watch != 2*time.Second || !o.json {
		t.Fatalf("options %+v", o)
	}
	bad := write("bad.yaml", "src:\n  buffr: /x\n")
	_, err = statusConfig([]string{"--config", bad})
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `did you mean "buffer"`) {
		t.Fatalf("misspelt key: %v", err)
	}
	if o, err := statusConfig(nil); err != nil || o.chain.Src.tokenFile() != "" || o.chain.Src.Metrics != aimsrc.DefaultMetricsAddr {
		t.Fatalf("no source token (its metrics are read): %+v, %v", o, err)
	}
	if _, err := statusConfig([]string{"--src-buffer", "/b", "--watch", "soon"}); !errors.As(err, &ue) {
		t.Fatalf("bad --watch: %v", err)
	}
}

// TestStatusScreen: the screen shows every hop and "-" for figures a node
// does not report; --watch draws --count screens and stops.
func TestStatusScreen(t *testing.T) {
	lat := 2.5
	var data int64 = 3 << 20
	c := &chainView{Time: time.Now(),
		Source:      nodeView{Control: "127.0.0.1:7701", Up: true, Node: "src1", Link: &push.LinkState{State: push.LinkUp}, Paused: &aimsrc.PauseState{Volumes: []string{"v2"}}},
		Proxies:     []proxyView{{Role: metrics.RoleSource, Metrics: "127.0.0.1:9711", Error: "connection refused"}},
		Destination: nodeView{Control: "127.0.0.1:7702", Up: true, Node: "dst1"},
		Volumes: []volumeView{{Volume: "v1", State: chainLinkDown, SrcDataBytes: &data, TimeLatency: &lat, LastError: "source proxy unreachable"},
			{Volume: "v2", State: chainPaused}}}
	var b bytes.Buffer
	printChain(&b, c)
	for _, want := range []string{"node src1", "paused: v2", "source proxy", "UNREACHABLE: connection refused", "node dst1",
		"v1      link down  3.0 MiB   2.5s          -     -    source proxy unreachable", "v2      paused     -"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("screen lacks %q:\n%s", want, b.String())
		}
	}
	o := statusOptions{chain: statusFile{Src: statusNode{Control: "127.0.0.1:1", Token: "/nonexistent"},
		Dst: statusNode{Control: "127.0.0.1:1", Metrics: "127.0.0.1:1"}}, watch: time.Millisecond, count: 3, json: true}
	b.Reset()
	if err := runStatusTo(t.Context(), o, &b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), b.String())
	}
	var v chainView
	if err := json.Unmarshal([]byte(lines[0]), &v); err != nil || v.Source.Up || v.Source.Error == "" || v.Destination.Up {
		t.Fatalf("unreachable chain: %+v, %v", v, err)
	}
}

// TestSrcFromMetrics: without its token, the source is read from its
// metrics: volumes, states, pauses and the link.
func TestSrcFromMetrics(t *testing.T) {
	s := mustScrape(t, `aimwan_src_data_bytes{volume="a"} 4096
aimwan_src_data_bytes{volume="b"} 0
aimwan_src_files_waiting{volume="a"} 2
aimwan_src_state{state="normal",volume="a"} 0
aimwan_src_state{state="pull-ahead",volume="a"} 1
aimwan_src_paused{volume="b"} 1
aimwan_src_link_up 0
aimwan_src_link_down_seconds 30
`, time.Unix(1000, 0))
	doc := srcDocFromMetrics(s)
	if len(doc.Volumes) != 2 || doc.Volumes[0].Name != "a" || doc.Volumes[0].SrcDataBytes != 4096 || doc.Volumes[0].FilesWaiting != 2 ||
		doc.Volumes[0].State != aimsrc.StatePullAhead || doc.Volumes[1].PausedBy == "" || doc.Volumes[1].State != aimsrc.StateNormal {
		t.Fatalf("volumes %+v", doc.Volumes)
	}
	if doc.Link == nil || doc.Link.State != push.LinkDown || !doc.Link.Since.Equal(time.Unix(970, 0)) || len(doc.Paused.Volumes) != 1 {
		t.Fatalf("link %+v, paused %+v", doc.Link, doc.Paused)
	}
}

// FuzzParseScrape: any text parses or fails cleanly, and what parses reads
// without panicking.
func FuzzParseScrape(f *testing.F) {
	f.Add(sourceEdge(1, 2, 1))
	f.Add("aimwan_proxy_peer_up 1\n")
	f.Add("# TYPE x summary\nx{quantile=\"0.5\"} 1\nx_sum 1\nx_count 1\n")
	f.Add("aimwan_proxy_wire_bytes_total{role=\"source\"} NaN\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := parseScrape(strings.NewReader(text), time.Unix(1, 0))
		if err != nil {
			return
		}
		for _, role := range []string{metrics.RoleSource, metrics.RoleDestination} {
			p := proxyView{Role: role}
			proxyFromScrape(&p, s, s)
		}
		dstVolsFromMetrics(s)
		srcDocFromMetrics(s)
	})
}

// TestStatusDocExample: the config file of docs/operations.md loads as
// documented (the node YAML it names is stubbed).
func TestStatusDocExample(t *testing.T) {
	doc := repoFile(t, "docs/operations.md")
	start := strings.Index(doc, "```yaml\n# /etc/aimwan/chain.yaml")
	if start < 0 {
		t.Fatal("docs/operations.md has no chain.yaml example")
	}
	body := doc[start+len("```yaml\n"):]
	body = body[:strings.Index(body, "```")]
	dir := t.TempDir()
	srcYAML := filepath.Join(dir, "src.yaml")
	if err := os.WriteFile(srcYAML, []byte("buffer: /var/lib/aimwan/src\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(dir, "chain.yaml")
	if err := os.WriteFile(chain, []byte(strings.ReplaceAll(body, "/etc/aimwan/src.yaml", srcYAML)), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := statusConfig([]string{"--config", chain})
	if err != nil {
		t.Fatal(err)
	}
	c := o.chain
	if c.Src.tokenFile() != ctlapi.TokenPath("/var/lib/aimwan/src") || c.Src.Control != aimsrc.DefaultControlAddr ||
		c.SourceProxy.Metrics != "127.0.0.1:9711" || c.DestinationProxy.Metrics != "10.20.0.2:9712" ||
		c.Dst.tokenFile() != "" || c.Dst.Metrics != "10.20.0.2:9702" {
		t.Fatalf("the documented example reads as %+v", c)
	}
}
