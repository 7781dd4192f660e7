package transport

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/testutils/simnet"
)

// logBuf collects log output safely across goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func mustIdentity(t *testing.T) *Identity {
	t.Helper()
	id, err := GenerateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

var fastCfg = Config{IdleTimeout: 5 * time.Second, HandshakeTimeout: 3 * time.Second}

// simNet is quic-go's simulated network (testutils/simnet) with a client
// and a server endpoint 10 ms apart, for tests run in a synctest bubble.
type simNet struct {
	client, server *simnet.SimConn
	serverAddr     *net.UDPAddr
}

func newSimNet(t *testing.T) *simNet {
	t.Helper()
	n := &simnet.Simnet{Router: &simnet.PerfectRouter{}}
	settings := simnet.NodeBiDiLinkSettings{Latency: 5 * time.Millisecond}
	s := &simNet{serverAddr: &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 4433}}
	s.client = n.NewEndpoint(&net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4001}, settings)
	s.server = n.NewEndpoint(s.serverAddr, settings)
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return s
}

// listen starts a listener on the simulated server endpoint.
func (s *simNet) listen(t *testing.T, id *Identity, pins Pins, log *slog.Logger) *Listener {
	t.Helper()
	ln, err := ListenPacket(s.server, id, pins, fastCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// endpoint returns a client endpoint on the simulated client socket.
func (s *simNet) endpoint(t *testing.T, id *Identity, log *slog.Logger) *Endpoint {
	t.Helper()
	ep, err := NewEndpoint(s.client, id, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// waitLog polls the log for want until a deadline.
func waitLog(t *testing.T, b *logBuf, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q; log:\n%s", want, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoOnce accepts one connection and echoes its first stream.
func echoOnce(ctx context.Context, ln *Listener) error {
	c, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return err
	}
	_, err = io.Copy(s, s)
	s.Close()
	return err
}

// roundTrip checks the negotiated protocol and echoes a message over c.
func roundTrip(ctx context.Context, t *testing.T, c *quic.Conn) {
	t.Helper()
	if got := c.ConnectionState().TLS.NegotiatedProtocol; got != ALPN {
		t.Errorf("ALPN %q, want %q", got, ALPN)
	}
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello over quic")
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestHandshakeOK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		srvID, cliID := mustIdentity(t), mustIdentity(t)
		n := newSimNet(t)
		ln := n.listen(t, srvID, Pins{cliID.Fingerprint}, nil)
		done := make(chan error, 1)
		go func() { done <- echoOnce(ctx, ln) }()
		c, err := n.endpoint(t, cliID, nil).Dial(ctx, n.serverAddr, Pins{srvID.Fingerprint}, fastCfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseWithError(0, "")
		roundTrip(ctx, t, c)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// The same over real UDP sockets on loopback: Listen and Dial by address.
func TestHandshakeOKOverUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	srvID, cliID := mustIdentity(t), mustIdentity(t)
	ln, err := Listen("127.0.0.1:0", srvID, Pins{cliID.Fingerprint}, fastCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() { done <- echoOnce(ctx, ln) }()
	c, err := Dial(ctx, ln.Addr().String(), cliID, Pins{srvID.Fingerprint}, fastCfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	roundTrip(ctx, t, c)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// refusedConn asserts that a connection attempt does not yield a usable
// connection: either Dial fails or the connection dies before a stream round trip.
func refusedConn(ctx context.Context, t *testing.T, c *quic.Conn, err error) {
	t.Helper()
	if err != nil {
		return
	}
	defer c.CloseWithError(0, "")
	select {
	case <-c.Context().Done():
	case <-ctx.Done():
		t.Fatal("connection to a refusing peer stayed up")
	}
}

func TestUnknownClientRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		srvID, cliID, other := mustIdentity(t), mustIdentity(t), mustIdentity(t)
		log, buf := newLogger()
		n := newSimNet(t)
		ln := n.listen(t, srvID, Pins{other.Fingerprint}, log)
		go func() {
			if c, err := ln.Accept(ctx); err == nil {
				t.Error("server accepted an unknown client")
				c.CloseWithError(0, "")
			}
		}()
		c, err := n.endpoint(t, cliID, nil).Dial(ctx, n.serverAddr, Pins{srvID.Fingerprint}, fastCfg)
		refusedConn(ctx, t, c, err)
		waitLog(t, buf, "unknown fingerprint")
		waitLog(t, buf, cliID.Fingerprint.String())
	})
}

func TestUnknownServerRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		srvID, cliID, other := mustIdentity(t), mustIdentity(t), mustIdentity(t)
		n := newSimNet(t)
		n.listen(t, srvID, Pins{cliID.Fingerprint}, nil)
		log, buf := newLogger()
		c, err := n.endpoint(t, cliID, log).Dial(ctx, n.serverAddr, Pins{other.Fingerprint}, fastCfg)
		if err == nil {
			c.CloseWithError(0, "")
			t.Fatal("client accepted an unpinned server")
		}
		waitLog(t, buf, "unknown fingerprint")
	})
}

func TestWrongALPNRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		srvID, cliID := mustIdentity(t), mustIdentity(t)
		log, buf := newLogger()
		n := newSimNet(t)
		n.listen(t, srvID, Pins{cliID.Fingerprint}, log)
		tc := ClientTLS(cliID, Pins{srvID.Fingerprint}, "test", nil)
		tc.NextProtos = []string{"aimwan/0"}
		c, err := quic.Dial(ctx, n.client, n.serverAddr, tc, fastCfg.QUIC())
		if err == nil {
			c.CloseWithError(0, "")
			t.Fatal("server accepted a wrong ALPN")
		}
		waitLog(t, buf, "wrong protocol version")
	})
}

func TestPoolReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		srvID, cliID := mustIdentity(t), mustIdentity(t)
		n := newSimNet(t)
		ln := n.listen(t, srvID, Pins{cliID.Fingerprint}, nil)
		accepted := make(chan *quic.Conn, 8)
		go func() {
			for {
				c, err := ln.Accept(ctx)
				if err != nil {
					return
				}
				accepted <- c
			}
		}()
		cfg := fastCfg
		cfg.Conns = 2
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
		p := &Pool{Addr: n.serverAddr.String(), Identity: cliID, Pins: Pins{srvID.Fingerprint}, Config: cfg,
			Endpoint: n.endpoint(t, cliID, nil), Logger: quietLog}
		served := make(chan error, 1)
		go func() { served <- p.Serve(ctx) }()
		first, err := p.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			<-accepted
		}
		// One connection drops; the pool must replace it.
		first.CloseWithError(0, "test drop")
		<-accepted
		for len(p.Conns()) != 2 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	})
}

func TestWindows(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}},
		{"slow", Config{LinkRate: 250e3, RTT: 40 * time.Millisecond}},
		{"fat", Config{LinkRate: 1.25e9, RTT: 200 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is, ms, ic, mc := tc.cfg.Windows()
			bdp := tc.cfg.BDP()
			if ms < 2*bdp && ms < maxWindow || mc < 4*bdp && mc < maxWindow {
				t.Errorf("windows %d/%d below 2/4 x BDP %d", ms, mc, bdp)
			}
			if is > ms || ic > mc || ms > mc {
				t.Errorf("inconsistent windows %d %d %d %d", is, ms, ic, mc)
			}
		})
	}
}

// A listener restarted with the same identity (a crash and restart) resets
// connections peers still hold at their next data packet, long before the
// idle timeout. (Keep-alive packets are too small to trigger a reset.)
func TestRestartedListenerResetsOldConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	srvID, cliID := mustIdentity(t), mustIdentity(t)
	cfg := Config{IdleTimeout: time.Minute, KeepAlive: 200 * time.Millisecond}
	ln, err := Listen("127.0.0.1:0", srvID, Pins{cliID.Fingerprint}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	accepted := make(chan struct{})
	go func() {
		if _, err := ln.Accept(ctx); err == nil {
			close(accepted)
		}
	}()
	c, err := Dial(ctx, addr, cliID, Pins{srvID.Fingerprint}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	<-accepted
	ln.Close() // abrupt: no CONNECTION_CLOSE reaches the client
	ln2, err := Listen(addr, srvID, Pins{cliID.Fingerprint}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	start := time.Now()
	if s, err := c.OpenStream(); err == nil { // the next file, as the proxy would send it
		s.Write(make([]byte, 4096))
	}
	select {
	case <-c.Context().Done():
		t.Logf("old connection reset after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("old connection still up 10s after the peer restarted (no stateless reset)")
	}
}
