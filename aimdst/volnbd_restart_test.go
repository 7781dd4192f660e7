package aimdst

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/internal/testkit/nbdserve"
)

// switchProxy relays every TCP connection to its current target (changed
// with set, for new connections); cut makes the next connection break once
// that many bytes went from the client to the server: a connection lost in
// the middle of a request.
type switchProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	to    string
	cut   int64
	conns []net.Conn
	n     int // connections accepted
	wg    sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, to: target}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *switchProxy) addr() string { return p.ln.Addr().String() }

func (p *switchProxy) set(target string) {
	p.mu.Lock()
	p.to = target
	p.mu.Unlock()
}

func (p *switchProxy) cutNext(n int64) {
	p.mu.Lock()
	p.cut = n
	p.mu.Unlock()
}

func (p *switchProxy) accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *switchProxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		to, cut := p.to, p.cut
		p.cut = 0
		p.n++
		p.conns = append(p.conns, in)
		p.mu.Unlock()
		out, err := net.DialTimeout("tcp", to, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, out)
		p.mu.Unlock()
		p.wg.Go(func() { io.Copy(in, out); in.Close() })
		p.wg.Go(func() {
			if cut > 0 {
				io.CopyN(out, in, cut)
			} else {
				io.Copy(out, in)
			}
			in.Close()
			out.Close()
		})
	}
}

// syncBuffer is a bytes.Buffer for a logger shared by goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNBDVolumeServerRestart: qemu-nbd serving the qcow2 DR volume is killed
// (SIGKILL: what it had not flushed is lost) while dst destages, more files
// arrive meanwhile, the volume goes offline, qemu-nbd starts again on the
// same image and port, and destage catches up from its cursor: the qcow2
// equals the in-order result and so do the snapshots.
func TestNBDVolumeServerRestart(t *testing.T) {
	g := nbdJournal(t, 5, 1500)
	p := filepath.Join(t.TempDir(), "dr.qcow2")
	nbdserve.QemuImg(t, "create", "-q", "-f", "qcow2", p, "4M")
	srv := nbdserve.QemuNBD(t, p, "qcow2", "vol")
	logs := &syncBuffer{}
	tn := nbdNode(t, srv.URI, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		c.RetryMax = 100 * time.Millisecond
	})
	tn.serve(t)
	half := len(g.files) / 2
	deliverAll(t, tn.n, "vol", g.files[:half])
	testkit.WaitFor(t, 30*time.Second, "destage under way", func() bool { return tn.n.Status().Volumes[0].DestagedFile > 0 })
	srv.Kill()
	deliverAll(t, tn.n, "vol", g.files[half:])
	testkit.WaitFor(t, 30*time.Second, "volume offline while qemu-nbd is down", func() bool {
		v := tn.n.Status().Volumes[0]
		return v.Offline && (strings.HasSuffix(v.State, ": unreachable") || strings.HasSuffix(v.State, ": connection lost"))
	})
	if v := tn.n.Status().Volumes[0]; v.DestagedFile == uint64(len(g.files)) {
		t.Fatal("every file destaged with the server down")
	}
	srv.Start()
	testkit.WaitFor(t, 60*time.Second, "catch-up after qemu-nbd restarted", destaged(tn.n, len(g.files)))
	testkit.WaitFor(t, 10*time.Second, "idle", func() bool { return tn.n.Status().Volumes[0].State == stateIdle })
	srv.Stop()
	raw := filepath.Join(t.TempDir(), "want.raw")
	if err := os.WriteFile(raw, g.final, 0o600); err != nil {
		t.Fatal(err)
	}
	nbdserve.QemuImg(t, "compare", "-q", "-f", "raw", "-F", "qcow2", raw, p)
	checkSnapshots(t, tn, g)
	if !strings.Contains(logs.String(), "destage paused") {
		t.Error("no log line for the offline volume")
	}
}

// TestNBDVolumeConnectionCut: the connection to the DR volume's server
// breaks in the middle of a write; the volume goes offline ("connection
// lost"), reconnects, replays the file from the cursor, and the export ends
// byte-identical.
func TestNBDVolumeConnectionCut(t *testing.T) {
	g := nbdJournal(t, 9, 300)
	p := filepath.Join(t.TempDir(), "dr.qcow2")
	nbdserve.QemuImg(t, "create", "-q", "-f", "qcow2", p, "4M")
	srv := nbdserve.QemuNBD(t, p, "qcow2", "vol")
	px := newSwitchProxy(t, srv.Addr)
	px.cutNext(5000) // the handshake, then a few writes of the first file; cut inside one
	logs := &syncBuffer{}
	tn := nbdNode(t, "nbd://"+px.addr()+"/vol", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	tn.serve(t)
	deliverAll(t, tn.n, "vol", g.files)
	testkit.WaitFor(t, 30*time.Second, "destage after the cut", destaged(tn.n, len(g.files)))
	if !strings.Contains(logs.String(), "offline: connection lost") {
		t.Errorf("the cut did not show as offline: connection lost; log:\n%s", logs.String())
	}
	if px.accepted() < 2 {
		t.Errorf("%d connections: no reconnect", px.accepted())
	}
	if got := readExport(t, srv.URI); !bytes.Equal(got, g.final) {
		t.Fatalf("export: %s", testkit.FirstDiff(g.final, got))
	}
	checkSnapshots(t, tn, g)
}
