package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/procs"
)

// ProxyPair is a source-edge and a destination-edge `aimwan proxy` joined by
// QUIC on loopback.
type ProxyPair struct {
	Source, Dest   *Proc
	LAN            string // where src pushes (the source edge)
	WAN            string // the destination edge's UDP address
	SourceMetrics  string
	DestMetrics    string
	Cache          string // the destination edge's chunk store
	SrcFP, DestFP  string // the edges' fingerprints (Keys.ProxySrc, Keys.ProxyDst)
	srcKey, dstKey string
}

// Keygen makes an identity in dir and returns its fingerprint (the last
// word of keygen's output).
func Keygen(t *testing.T, dir string) string {
	t.Helper()
	fp, err := procs.Keygen(context.Background(), aimwanBin, dir)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// pairOpts vary StartProxyPair.
type pairOpts struct {
	mode       string   // optimize (default) or passthrough
	sourceArgs []string // extra flags of the source edge
	destPinFP  string   // the fingerprint the destination pins ("" = the source's)
	prime      string   // image loaded into the destination's cache before it starts
}

// StartProxyPair starts both edges: the destination edge forwards to dst.
func StartProxyPair(t *testing.T, dst string, o pairOpts) *ProxyPair {
	t.Helper()
	dir := t.TempDir()
	p := &ProxyPair{LAN: testkit.FreeAddr(t), WAN: testkit.FreeAddr(t), SourceMetrics: testkit.FreeAddr(t), DestMetrics: testkit.FreeAddr(t),
		Cache: filepath.Join(dir, "cache"), srcKey: Keys.ProxySrc.Dir, dstKey: Keys.ProxyDst.Dir}
	p.SrcFP, p.DestFP = Keys.ProxySrc.FP, Keys.ProxyDst.FP
	pin := o.destPinFP
	if pin == "" {
		pin = p.SrcFP
	}
	mode := o.mode
	if mode == "" {
		mode = "optimize"
	}
	if o.prime != "" {
		MustAimwan(t, "proxy", "prime", "--cache", p.Cache, "--image", o.prime)
	}
	p.Dest = StartProc(t, "proxy-dest", "proxy", "--wan-listen", p.WAN, "--lan-forward", dst, "--mode", mode,
		"--key", p.dstKey, "--peer-fp", pin, "--lan-peer-fp", Keys.Dst.FP, "--cache", p.Cache, "--metrics", p.DestMetrics, "--rtt", "1ms")
	WaitPort(t, p.DestMetrics, p.Dest)
	args := append([]string{"proxy", "--lan-listen", p.LAN, "--wan-peer", p.WAN, "--mode", mode,
		"--key", p.srcKey, "--peer-fp", p.DestFP, "--lan-peer-fp", Keys.Src.FP, "--metrics", p.SourceMetrics, "--rtt", "1ms"}, o.sourceArgs...)
	p.Source = StartProc(t, "proxy-source", args...)
	WaitPort(t, p.LAN, p.Source)
	return p
}

// Metric reads a metric from a proxy's /metrics: the sum of its series (an
// edge labels each with its role), 0 if absent.
func Metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0 // restarting; callers poll
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			f, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += f
		}
	}
	return sum
}

// replicate writes image to volume v through src and waits for the snapshot
// label at dst, which must equal the image.
func replicate(t *testing.T, src *SrcNode, dst *DstNode, image, label string) {
	t.Helper()
	src.WriteImage(t, "v", image)
	src.Marker(t, "--volume", "v", "--snapshot", label)
	SameFile(t, dst.WaitSnapshot(t, "v", label, 90*time.Second), image)
}

// settle waits until the source edge holds no file (every ack relayed), so
// its counters are final.
func settle(t *testing.T, pp *ProxyPair) {
	t.Helper()
	Eventually(t, 30*time.Second, "the source edge to settle", func() (bool, error) {
		return Metric(t, pp.SourceMetrics, "aimwan_proxy_files_in_flight") == 0, nil
	})
}

// TestProxyPairSnapshot: src → source edge → QUIC → destination edge → dst,
// with qemu-img writing through NBD, in both modes; a second, identical image
// costs a fraction of the first on the WAN in optimize mode.
func TestProxyPairSnapshot(t *testing.T) {
	NeedBins(t, "qemu-img")
	for _, mode := range []string{"optimize", "passthrough"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			gen := filepath.Join(dir, "gen.img")
			GenImage(t, gen, imgSize, 11)
			dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
			pp := StartProxyPair(t, dst.Listen, pairOpts{mode: mode})
			src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
			replicate(t, src, dst, gen, "s1")
			settle(t, pp)
			wire1 := Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total")
			logical1 := Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total")
			if logical1 == 0 || wire1 == 0 {
				t.Fatalf("metrics: logical %v wire %v", logical1, wire1)
			}
			replicate(t, src, dst, gen, "s2") // the same bytes written again
			settle(t, pp)
			wire2 := Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total") - wire1
			logical2 := Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total") - logical1
			t.Logf("%s: first image %.0f logical / %.0f wire; rewrite %.0f logical / %.0f wire", mode, logical1, wire1, logical2, wire2)
			if mode == "optimize" && wire2 > logical2/10 {
				t.Errorf("rewriting the same image cost %.0f wire bytes for %.0f logical, want < 10%%", wire2, logical2)
			}
		})
	}
}

// TestProxyKilledMidFile: either edge is SIGKILLed while files cross a slow
// (4 Mbit/s) WAN and restarted; the destination edge comes back with its
// cache wiped. Nothing is lost and the snapshot is exact.
func TestProxyKilledMidFile(t *testing.T) {
	NeedBins(t, "qemu-img")
	for _, victim := range []string{"source", "dest"} {
		t.Run(victim, func(t *testing.T) {
			dir := t.TempDir()
			gen := filepath.Join(dir, "gen.img")
			GenImage(t, gen, imgSize, 12)
			dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
			pp := StartProxyPair(t, dst.Listen, pairOpts{sourceArgs: []string{"--schedule", "* 00:00-24:00 4mbit"}})
			src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
			src.WriteImage(t, "v", gen)
			src.Marker(t, "--volume", "v", "--snapshot", "s1")
			Eventually(t, 30*time.Second, "bytes on the WAN", func() (bool, error) {
				return Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total") > 64<<10, nil
			})
			if victim == "source" {
				pp.Source.Kill()
				pp.Source.Restart()
				WaitPort(t, pp.LAN, pp.Source)
			} else {
				pp.Dest.Kill()
				if err := os.RemoveAll(pp.Cache); err != nil {
					t.Fatal(err)
				}
				pp.Dest.Restart()
				WaitPort(t, pp.DestMetrics, pp.Dest)
			}
			SameFile(t, dst.WaitSnapshot(t, "v", "s1", 120*time.Second), gen)
		})
	}
}

// TestProxyUnknownPeerRefused: the destination edge pins another
// fingerprint; it refuses the source edge with a clear log line and nothing
// reaches dst.
func TestProxyUnknownPeerRefused(t *testing.T) {
	dir := t.TempDir()
	other := Keygen(t, filepath.Join(dir, "other"))
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pp := StartProxyPair(t, dst.Listen, pairOpts{destPinFP: other})
	Eventually(t, 30*time.Second, "the refusal in the destination edge's log", func() (bool, error) {
		out := pp.Dest.Output()
		return strings.Contains(out, "unknown fingerprint") && strings.Contains(out, pp.SrcFP), nil
	})
	if n := Metric(t, pp.DestMetrics, "aimwan_proxy_logical_bytes_total"); n != 0 {
		t.Errorf("destination edge carried %v bytes from an unknown peer", n)
	}
}

// TestProxySchedulePauseResume: the source edge starts with a schedule file
// that pauses the WAN; nothing crosses until the file is changed to
// unlimited, which the running proxy picks up without a restart.
func TestProxySchedulePauseResume(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 13)
	sched := filepath.Join(dir, "wan.schedule")
	if err := os.WriteFile(sched, []byte("default paused\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pp := StartProxyPair(t, dst.Listen, pairOpts{sourceArgs: []string{"--schedule", sched}})
	src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	Eventually(t, 30*time.Second, "a file held by the paused source edge", func() (bool, error) {
		return Metric(t, pp.SourceMetrics, "aimwan_proxy_files_in_flight") > 0, nil
	})
	if c := Metric(t, pp.SourceMetrics, "aimwan_proxy_schedule_cap_bytes_per_second"); c != 0 {
		t.Fatalf("schedule cap %v while paused, want 0", c)
	}
	if FileExists(dst.Snapshot("v", "s1")) {
		t.Fatal("snapshot arrived while the WAN was paused")
	}
	// Make sure the rewrite changes the modification time the watcher sees.
	later := time.Now().Add(2 * time.Second)
	if err := os.WriteFile(sched, []byte("default unlimited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(sched, later, later); err != nil {
		t.Fatal(err)
	}
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 60*time.Second), gen)
	if c := Metric(t, pp.SourceMetrics, "aimwan_proxy_schedule_cap_bytes_per_second"); c != -1 {
		t.Errorf("schedule cap %v after resuming, want -1 (unlimited)", c)
	}
}

// TestProxyPrimedCache: the destination edge's cache is primed with an image
// the DR site already holds; the source edge learns the cache's content at
// connect, so replicating that image sends mostly references.
func TestProxyPrimedCache(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 14)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pp := StartProxyPair(t, dst.Listen, pairOpts{prime: gen})
	src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	replicate(t, src, dst, gen, "s1")
	settle(t, pp)
	logical := Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total")
	wire := Metric(t, pp.SourceMetrics, "aimwan_proxy_wire_bytes_total")
	t.Logf("primed: %.0f logical / %.0f wire", logical, wire)
	// Writes cut the image at zero runs, so chunks next to each cut differ
	// from the primed ones (about a fifth of this image's data).
	if logical == 0 || wire > logical/3 {
		t.Errorf("replicating a primed image cost %.0f wire bytes for %.0f logical, want < 1/3", wire, logical)
	}
}
