package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimwan/aimwan/aimsrc"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/push"
)

// chainStatus is what the tests read of `aimwan status --json`.
type chainStatus struct {
	Source struct {
		Up   bool            `json:"up"`
		Link *push.LinkState `json:"link"`
	} `json:"source"`
	Proxies []struct {
		Role   string `json:"role"`
		Up     bool   `json:"up"`
		PeerUp *bool  `json:"peer_up"`
	} `json:"proxies"`
	Destination struct {
		Up bool `json:"up"`
	} `json:"destination"`
	Volumes []struct {
		Volume       string   `json:"volume"`
		State        string   `json:"state"`
		SrcDataBytes *int64   `json:"src_data_bytes"`
		TimeLatency  *float64 `json:"time_latency_s"`
		LastError    string   `json:"last_error"`
	} `json:"volumes"`
}

// chainArgs are the addresses of the chain for aimwan status.
func chainArgs(src *SrcNode, pp *ProxyPair, dst *DstNode) []string {
	args := []string{"status", "--src-control", src.Control, "--src-buffer", src.Buffer,
		"--dst-control", dst.Control, "--dst-buffer", dst.Buffer}
	if pp != nil {
		args = append(args, "--source-proxy", pp.SourceMetrics, "--destination-proxy", pp.DestMetrics)
	}
	return args
}

// readChain runs aimwan status --json once.
func readChain(t *testing.T, args []string) chainStatus {
	t.Helper()
	out := MustAimwan(t, append(args, "--json", "--sample", "0")...)
	var st chainStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("aimwan status --json: %v\n%s", err, out)
	}
	if len(st.Volumes) != 1 {
		t.Fatalf("aimwan status: %d volumes, want 1\n%s", len(st.Volumes), out)
	}
	return st
}

// TestStatusLinkDown: aimwan status shows a caught-up chain, names the
// stopped source-edge proxy as link down within 15 s (on the screen and in
// src status, with the reason), and recovers when it is back; the same for
// the destination-edge proxy.
func TestStatusLinkDown(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 21)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	pp := StartProxyPair(t, dst.Listen, pairOpts{})
	src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	replicate(t, src, dst, gen, "s1")
	args := chainArgs(src, pp, dst)
	Eventually(t, 30*time.Second, "aimwan status: caught up", func() (bool, error) {
		st := readChain(t, args)
		return st.Volumes[0].State == "caught up", nil
	})
	screen := MustAimwan(t, args...)
	t.Logf("aimwan status, caught up:\n%s", screen)
	for _, want := range []string{"source proxy", "destination proxy", "caught up", "peer up"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen lacks %q", want)
		}
	}

	pp.Source.Stop()
	stopped := time.Now()
	var st chainStatus
	Eventually(t, 15*time.Second, "aimwan status: link down", func() (bool, error) {
		st = readChain(t, args)
		return st.Volumes[0].State == "link down", nil
	})
	t.Logf("link down shown %v after the source proxy stopped", time.Since(stopped).Round(time.Millisecond))
	if st.Proxies[0].Up || st.Volumes[0].LastError == "" {
		t.Errorf("link down without the unreachable proxy or a reason: %+v", st)
	}
	testkit.WaitFor(t, 15*time.Second, "src status: link down", func() bool {
		return src.Status(t).Link.State == push.LinkDown
	})
	l := src.Status(t).Link
	if l.Error == "" || l.Since.Before(stopped.Add(-time.Second)) {
		t.Errorf("src status link: %+v", l)
	}
	screen = MustAimwan(t, args...)
	t.Logf("aimwan status, source proxy stopped:\n%s", screen)
	if !strings.Contains(screen, "link down") || !strings.Contains(screen, "UNREACHABLE") {
		t.Errorf("the screen does not say link down")
	}
	srcScreen := MustAimwan(t, "src", "status", "--control", src.Control, "--buffer", src.Buffer)
	if !strings.Contains(srcScreen, "LINK DOWN since") {
		t.Errorf("src status does not say link down:\n%s", srcScreen)
	}

	pp.Source.Restart()
	WaitPort(t, pp.LAN, pp.Source)
	recovered := func() {
		t.Helper()
		Eventually(t, 30*time.Second, "aimwan status: recovered", func() (bool, error) {
			st = readChain(t, args)
			return st.Volumes[0].State == "caught up" && st.Source.Link.State == push.LinkUp, nil
		})
	}
	recovered()

	// The destination edge stopped: its metrics do not answer (and the
	// source edge's WAN session ends).
	Eventually(t, 30*time.Second, "the WAN session up again", func() (bool, error) {
		st = readChain(t, args)
		return st.Proxies[0].PeerUp != nil && *st.Proxies[0].PeerUp, nil
	})
	pp.Dest.Stop()
	stopped = time.Now()
	Eventually(t, 15*time.Second, "aimwan status: link down (destination edge)", func() (bool, error) {
		st = readChain(t, args)
		return st.Volumes[0].State == "link down", nil
	})
	t.Logf("link down shown %v after the destination proxy stopped", time.Since(stopped).Round(time.Millisecond))
	pp.Dest.Restart()
	WaitPort(t, pp.DestMetrics, pp.Dest)
	recovered()
}

// TestPauseRestartResume: a paused volume keeps journaling but pushes
// nothing, across a restart of src; status and metrics show the pause; the
// resume pushes everything and the snapshot placed while paused arrives
// intact.
func TestPauseRestartResume(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 22)
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	metricsAddr := testkit.FreeAddr(t)
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"}, "--metrics", metricsAddr)
	ctl := []string{"--control", src.Control, "--buffer", src.Buffer}
	out := MustAimwan(t, append([]string{"src", "pause", "--volume", "v"}, ctl...)...)
	if !strings.Contains(out, "paused: v") {
		t.Fatalf("src pause: %s", out)
	}
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	waitSealed := func() {
		t.Helper()
		Eventually(t, 20*time.Second, "files sealed at src", func() (bool, error) {
			v := src.Status(t).Volumes[0]
			return v.FilesWaiting > 0 && v.PausedBy == aimsrc.PausedByVolume, nil
		})
	}
	waitSealed()
	src.Restart()
	WaitPort(t, src.Control, src.Proc)
	waitSealed() // still paused after the restart
	testkit.WaitFor(t, 15*time.Second, "src's link up", func() bool { return src.Status(t).Link.State == push.LinkUp })
	if got := Scrape(t, metricsAddr)[`aimwan_src_paused{volume="v"}`]; got != 1 {
		t.Errorf("aimwan_src_paused{volume=\"v\"} = %v, want 1", got)
	}
	args := chainArgs(src, nil, dst)
	if st := readChain(t, args); st.Volumes[0].State != "paused" || st.Volumes[0].SrcDataBytes == nil || *st.Volumes[0].SrcDataBytes == 0 {
		t.Errorf("aimwan status while paused: %+v", st.Volumes[0])
	}
	// Nothing leaves while paused: the destination has received nothing, over
	// a few of src's file-age periods with its link up.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if v := dst.Volume(t, "v"); v.DestagedFile != 0 || v.FilesWaiting != 0 || v.Receiving != 0 {
			t.Fatalf("dst got data of a paused volume: %+v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out = MustAimwan(t, append([]string{"src", "resume"}, ctl...)...)
	if !strings.Contains(out, "paused: nothing") {
		t.Fatalf("src resume: %s", out)
	}
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 60*time.Second), gen)
	Eventually(t, 30*time.Second, "aimwan status: caught up after the resume", func() (bool, error) {
		return readChain(t, args).Volumes[0].State == "caught up", nil
	})
	if got := Scrape(t, metricsAddr)[`aimwan_src_paused{volume="v"}`]; got != 0 {
		t.Errorf("aimwan_src_paused{volume=\"v\"} = %v after the resume, want 0", got)
	}
}
