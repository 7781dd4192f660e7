package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/ctlapi"
	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/transport/push"
)

// forgedFile is a valid journal file of volume v that overwrites its first
// 256 KiB with 0xAA: what an attacker on the LAN would push.
func forgedFile(t *testing.T, size int64) (push.Offer, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "forged")
	w, _, err := journal.OpenWriter(journal.WriterConfig{Dir: dir, Volume: "v", VolumeSize: size, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(0, bytes.Repeat([]byte{0xAA}, 256<<10)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, journal.FileName(1)))
	if err != nil {
		t.Fatal(err)
	}
	return push.FileOffer("v", 1, b), b
}

// forgeUnpinned pushes the forged file to addr with an identity the
// receiver does not pin (Keys.Rogue, which itself trusts the receiver's
// key): the TLS handshake must refuse it.
func forgeUnpinned(t *testing.T, addr string, receiver Key) {
	t.Helper()
	o, b := forgedFile(t, imgSize)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := push.Dial(ctx, addr, push.Hello{Node: "rogue", Volumes: []string{"v"}}, Keys.Rogue.Auth(t, receiver))
	if err == nil {
		err = c.Push(ctx, o, bytes.NewReader(b))
		c.Close()
		t.Fatalf("a client with an unpinned key connected to %s; its push returned %v", addr, err)
	}
	t.Logf("unpinned client refused: %v", err)
}

// forgePlain speaks the push protocol in plain TCP (the protocol before
// mutual TLS): HELLO, OFFER, DATA, END of the forged file. Nothing may come
// back but a closed connection.
func forgePlain(t *testing.T, addr string) {
	t.Helper()
	o, b := forgedFile(t, imgSize)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	var out []byte
	out = push.AppendMsg(out, push.Msg{Type: push.TypeHello, Version: push.Version, Hello: push.Hello{Node: "rogue"}})
	out = push.AppendMsg(out, push.Msg{Type: push.TypeOffer, ID: 1, Offer: o})
	for off := 0; off < len(b); off += push.MaxData {
		out = push.AppendMsg(out, push.Msg{Type: push.TypeData, ID: 1, Offset: int64(off), Data: b[off:min(len(b), off+push.MaxData)]})
	}
	out = push.AppendMsg(out, push.Msg{Type: push.TypeEnd, ID: 1})
	nc.Write(out) // may fail half-way: the receiver hangs up
	var buf []byte
	for {
		m, err := push.ReadMsg(nc, &buf)
		if err != nil {
			return // closed, or not a frame (a TLS alert)
		}
		if m.Type == push.TypeAck || m.Type == push.TypeAccept || m.Type == push.TypeHelloOK {
			t.Fatalf("a plaintext client got %s from %s", m.Type, addr)
		}
	}
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// refusedMetric reads aimwan_push_refused_peers_total{fingerprint=fp}.
func refusedMetric(t *testing.T, metricsAddr, fp string) float64 {
	t.Helper()
	// Proxies add their role label: match the fingerprint whatever else the series carries.
	var sum float64
	for k, v := range Scrape(t, metricsAddr) {
		if strings.HasPrefix(k, "aimwan_push_refused_peers_total{") && strings.Contains(k, `fingerprint="`+fp+`"`) {
			sum += v
		}
	}
	return sum
}

// TestForgedPushToDst: a client with an unpinned key, a plain-TCP client
// and a whole src daemon with an unpinned key each try to write into dst's
// volume; each is refused in the handshake, dst's log and metric name the
// key, and the volume stays byte-identical. Then the pinned src replicates.
func TestForgedPushToDst(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	vol, before := filepath.Join(dir, "dst-v.img"), filepath.Join(dir, "before.img")
	GenImage(t, vol, imgSize, 21)
	copyFile(t, vol, before)
	dst := StartDst(t, []string{"v=" + vol})

	forgeUnpinned(t, dst.Listen, Keys.Dst)
	forgePlain(t, dst.Listen)
	rogue := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "rogue-v.img") + ",size=4MiB"}, "--key", Keys.Rogue.Dir)
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 22)
	rogue.WriteImage(t, "v", gen)
	rogue.Marker(t, "--volume", "v", "--snapshot", "evil")
	Eventually(t, 30*time.Second, "dst to refuse the unpinned src, by fingerprint", func() (bool, error) {
		return refusedMetric(t, dst.Metrics, Keys.Rogue.FP) >= 3 && strings.Contains(dst.Output(), Keys.Rogue.FP), nil
	})
	if n := Scrape(t, dst.Metrics)[`aimwan_push_refused_peers_total{fingerprint="none"}`]; n < 1 {
		t.Errorf("the plaintext client is not counted (none = %v)", n)
	}
	st := rogue.Status(t)
	if st.Volumes[0].FilesWaiting == 0 || !strings.Contains(st.Volumes[0].LastPushError, "certificate") {
		t.Errorf("the refused src should keep its files and say why: %+v", st.Volumes[0])
	}
	rogue.Stop()
	SameFile(t, vol, before)
	if FileExists(dst.Snapshot("v", "evil")) {
		t.Fatal("a snapshot from the unpinned src appeared")
	}
	if v := dst.Volume(t, "v"); v.DestagedSeq != 0 || v.FilesWaiting != 0 {
		t.Fatalf("dst took files from refused peers: %+v", v)
	}

	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	src.WriteImage(t, "v", gen)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 60*time.Second), gen)
}

// TestForgedPushToSourceProxy: the same attacks on the source edge's LAN
// listener, whose files would cross the authenticated WAN: refused there,
// nothing crosses, dst's volume stays byte-identical.
func TestForgedPushToSourceProxy(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	vol, before := filepath.Join(dir, "dst-v.img"), filepath.Join(dir, "before.img")
	GenImage(t, vol, imgSize, 23)
	copyFile(t, vol, before)
	dst := StartDst(t, []string{"v=" + vol})
	pp := StartProxyPair(t, dst.Listen, pairOpts{})

	forgeUnpinned(t, pp.LAN, Keys.ProxySrc)
	forgePlain(t, pp.LAN)
	rogue := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "rogue-v.img") + ",size=4MiB"}, "--key", Keys.Rogue.Dir)
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 24)
	rogue.WriteImage(t, "v", gen)
	Eventually(t, 90*time.Second, "the source edge to refuse the unpinned src, by fingerprint", func() (bool, error) {
		return refusedMetric(t, pp.SourceMetrics, Keys.Rogue.FP) >= 3 && strings.Contains(pp.Source.Output(), Keys.Rogue.FP), nil
	})
	rogue.Stop()
	if n := Metric(t, pp.SourceMetrics, "aimwan_proxy_logical_bytes_total"); n != 0 {
		t.Errorf("the source edge carried %v bytes from refused peers", n)
	}
	SameFile(t, vol, before)
	if v := dst.Volume(t, "v"); v.DestagedSeq != 0 || v.FilesWaiting != 0 {
		t.Fatalf("dst took files from refused peers: %+v", v)
	}

	src := StartSrc(t, pp.LAN, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	replicate(t, src, dst, gen, "s1")
}

// TestUnpinnedDst: src refuses a next hop whose key it does not pin (a
// rogue receiver on dst's address): nothing is acked, src keeps every file
// and says why.
func TestUnpinnedDst(t *testing.T) {
	NeedBins(t, "qemu-img")
	dir := t.TempDir()
	fake := StartDst(t, []string{"v=" + filepath.Join(dir, "fake-v.img") + ",create"}, "--key", Keys.Rogue.Dir)
	src := StartSrc(t, fake.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	gen := filepath.Join(dir, "gen.img")
	GenImage(t, gen, imgSize, 25)
	src.WriteImage(t, "v", gen)
	Eventually(t, 30*time.Second, "src to refuse the unpinned receiver", func() (bool, error) {
		st := src.Status(t).Volumes[0]
		return st.FilesWaiting > 0 && strings.Contains(st.LastPushError, "unknown peer fingerprint") &&
			strings.Contains(src.Output(), Keys.Rogue.FP), nil
	})
	if v := fake.Volume(t, "v"); v.DestagedSeq != 0 || v.FilesWaiting != 0 {
		t.Fatalf("the unpinned receiver got files: %+v", v)
	}
}

// TestIdleConnectionFlood: 1,000 connections that never speak, to dst's
// push listener while src replicates. dst holds: it stays up, closes what is
// over its cap at once and the silent ones at the handshake deadline, and
// the genuine pushes go on. Then the same flood on a dst limited to 48 open
// files, which runs out of descriptors: accept backs off and retries, dst
// stays up and replicates once the flood is gone.
func TestIdleConnectionFlood(t *testing.T) {
	NeedBins(t, "qemu-img")
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 1200 {
		t.Skipf("the test process may open %d files; it needs 1200 (go raises the soft limit to the hard one)", lim.Cur)
	}
	t.Run("cap", func(t *testing.T) { floodDst(t, nil) })
	t.Run("out of descriptors", func(t *testing.T) {
		floodDst(t, func(args []string) *Proc {
			// ulimit in a shell that execs dst: only dst runs out of files.
			sh := append([]string{"-c", `ulimit -n 48 && exec "$0" "$@"`, aimwanBin}, args...)
			return testkit.StartProc(t, "/bin/sh", "dst", sh...)
		})
	})
}

// floodDst runs the flood against a dst started by start (nil: the usual
// StartDst).
func floodDst(t *testing.T, start func(args []string) *Proc) {
	dir := t.TempDir()
	vol := filepath.Join(dir, "dst-v.img")
	dst := StartDstWith(t, start, []string{"v=" + vol + ",create"})
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	gen1, gen2 := filepath.Join(dir, "gen1.img"), filepath.Join(dir, "gen2.img")
	GenImage(t, gen1, imgSize, 26)
	GenImage(t, gen2, imgSize, 27)
	src.WriteImage(t, "v", gen1)
	src.Marker(t, "--volume", "v", "--snapshot", "s1")
	SameFile(t, dst.WaitSnapshot(t, "v", "s1", 60*time.Second), gen1)

	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for i := range 1000 {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", dst.Listen)
		if err != nil {
			t.Logf("flood: dial %d: %v", i, err)
			break
		}
		flood = append(flood, c)
	}
	t.Logf("flood: %d idle connections open", len(flood))
	src.WriteImage(t, "v", gen2)
	src.Marker(t, "--volume", "v", "--snapshot", "s2")
	held := start == nil
	if held { // within the cap the genuine connection was never at risk
		SameFile(t, dst.WaitSnapshot(t, "v", "s2", 60*time.Second), gen2)
	} else {
		Eventually(t, 30*time.Second, "dst to back off its accepts", func() (bool, error) {
			return strings.Contains(dst.Output(), "accept failed; retrying"), nil
		})
	}
	if dst.Exited() {
		t.Fatalf("dst exited under the flood:\n%s", dst.Tail(20))
	}
	for _, c := range flood {
		c.Close()
	}
	flood = nil
	if !held {
		SameFile(t, dst.WaitSnapshot(t, "v", "s2", 90*time.Second), gen2)
	}
	if dst.Exited() {
		t.Fatal("dst exited after the flood")
	}
	if held && !strings.Contains(dst.Output(), "listener at its cap") {
		t.Error("dst did not log refusing connections over its cap")
	}
	// A new connection (src restarted) is served after the flood.
	src.Restart()
	WaitPort(t, src.NBD, src.Proc)
	src.Marker(t, "--volume", "v", "--snapshot", "s3")
	SameFile(t, dst.WaitSnapshot(t, "v", "s3", 60*time.Second), gen2)
}

// TestControlCrossOrigin: what a web page in the operator's browser can
// send to src's control API (a cross-origin POST, with or without a stolen
// token, a rebound host name) is refused, and no marker is placed; the CLI,
// which reads the token file, places one.
func TestControlCrossOrigin(t *testing.T) {
	dir := t.TempDir()
	dst := StartDst(t, []string{"v=" + filepath.Join(dir, "dst-v.img") + ",create"})
	src := StartSrc(t, dst.Listen, []string{"v=" + filepath.Join(dir, "src-v.img") + ",size=4MiB"})
	token, err := ctlapi.ReadToken(ctlapi.TokenPath(src.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(ctlapi.TokenPath(src.Buffer))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	body := `{"volume":"v","kind":"snapshot","label":"evil"}`
	for _, tc := range []struct {
		name    string
		headers map[string]string
		host    string
		want    int
	}{
		{"browser form POST from another site", map[string]string{"Content-Type": "text/plain;charset=UTF-8",
			"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, "", http.StatusForbidden},
		{"cross-origin fetch with a stolen token", map[string]string{"Content-Type": "application/json",
			"Origin": "https://evil.example", "Authorization": "Bearer " + token}, "", http.StatusForbidden},
		{"DNS-rebound page", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token},
			"evil.example", http.StatusForbidden},
		{"local program without the token", map[string]string{"Content-Type": "application/json"}, "", http.StatusUnauthorized},
		{"text body with the token", map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + token},
			"", http.StatusUnsupportedMediaType},
	} {
		req, err := http.NewRequest(http.MethodPost, "http://"+src.Control+"/v1/marker", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d (%s), want %d", tc.name, resp.StatusCode, b, tc.want)
		}
	}
	out := MustAimwan(t, "src", "marker", "--control", src.Control, "--buffer", src.Buffer, "--volume", "v", "--snapshot", "s1")
	if !strings.Contains(out, "v@1") {
		t.Fatalf("the genuine marker is not the volume's first record (a refused request placed one?): %s", out)
	}
	dst.WaitSnapshot(t, "v", "s1", 60*time.Second)
	if FileExists(dst.Snapshot("v", "evil")) {
		t.Fatal("a refused request placed a marker")
	}
	if _, err := Aimwan(t, "src", "status", "--control", src.Control); err == nil {
		t.Error("src status without a token source succeeded")
	}
}
