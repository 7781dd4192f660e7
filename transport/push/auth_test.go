package push

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
	"github.com/aimwan/aimwan/transport/identity"
)

// syncBuffer is a log sink safe for concurrent writes.
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

// countingHandler counts Accept calls (none may reach it from a refused
// peer) and stores nothing.
type countingHandler struct{ accepts atomic.Int32 }

func (h *countingHandler) Accept(context.Context, Hello, Offer) (Sink, error) {
	h.accepts.Add(1)
	return &fakeSink{}, nil
}

// TestRefusedPeers: a client whose key the server does not pin, a plain
// TCP client speaking push frames, and a server the client does not pin
// are all refused during the TLS handshake; no offer reaches the handler,
// the log and the refusal counter name the unpinned fingerprint.
func TestRefusedPeers(t *testing.T) {
	h := &countingHandler{}
	logs := &syncBuffer{}
	refusals := identity.NewRefusals()
	auth := serverAuth()
	auth.Refusals = refusals
	addr := startServer(t, &Server{Handler: h, Auth: auth, HandshakeTimeout: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	b, o := testFile(1, 1000)

	t.Run("unpinned client", func(t *testing.T) {
		testIDs()
		stranger := Auth{Identity: strangerID, Peers: identity.Pins{serverID.Fingerprint}}
		c, err := Dial(context.Background(), addr, Hello{Node: "evil"}, stranger)
		if err == nil {
			err = c.Push(context.Background(), o, bytes.NewReader(b))
			c.Close()
			t.Fatalf("an unpinned client connected; its push returned %v", err)
		}
		if !strings.Contains(err.Error(), strangerID.Fingerprint.String()) {
			t.Errorf("the refused client is not told its fingerprint to pin: %v", err)
		}
		fp := strangerID.Fingerprint.String()
		testkit.WaitFor(t, 5*time.Second, "the refusal counted", func() bool { return refusals.Counts()[fp] == 1 })
		if !strings.Contains(logs.String(), fp) {
			t.Errorf("no log line names the refused fingerprint %s:\n%s", fp, logs)
		}
	})
	t.Run("plain TCP client", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write(AppendMsg(nil, Msg{Type: TypeHello, Version: Version, Hello: Hello{Node: "evil"}}))
		nc.Write(AppendMsg(nil, Msg{Type: TypeOffer, ID: 1, Offer: o}))
		var buf []byte
		if m, err := ReadMsg(nc, &buf); err == nil {
			t.Fatalf("a plaintext client got a %s frame back", m.Type)
		}
		testkit.WaitFor(t, 5*time.Second, "the refusal counted", func() bool { return refusals.Counts()[identity.NoFingerprint] >= 1 })
		if !strings.Contains(logs.String(), "does not speak TLS") {
			t.Errorf("the log does not say the peer is not TLS:\n%s", logs)
		}
	})
	t.Run("unpinned server", func(t *testing.T) {
		testIDs()
		wrongPin := Auth{Identity: clientID, Peers: identity.Pins{strangerID.Fingerprint}}
		_, err := Dial(context.Background(), addr, Hello{Node: "src"}, wrongPin)
		if !errors.Is(err, identity.ErrUnknownPeer) {
			t.Fatalf("dial to a server whose fingerprint is not pinned: %v, want ErrUnknownPeer", err)
		}
	})
	if n := h.accepts.Load(); n != 0 {
		t.Errorf("the handler saw %d offers from refused peers", n)
	}
	// A pinned client still gets through.
	if err := dial(t, addr).Push(context.Background(), o, bytes.NewReader(b)); err != nil {
		t.Fatalf("pinned client after the refusals: %v", err)
	}
}

// TestNoPlaintext: a server or a client without an identity or pins does
// not start; there is no mode without mutual TLS.
func TestNoPlaintext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := serverAuth()
	for name, auth := range map[string]Auth{"no auth": {}, "no pins": {Identity: a.Identity}, "no identity": {Peers: a.Peers}} {
		err := (&Server{Node: "dst", Handler: &countingHandler{}, Auth: auth}).Serve(context.Background(), ln)
		if err == nil || !strings.Contains(err.Error(), "mutual TLS") {
			t.Errorf("server with %s: Serve = %v, want a mutual TLS error", name, err)
		}
		if _, err := Dial(context.Background(), "127.0.0.1:1", Hello{Node: "src"}, auth); err == nil || !strings.Contains(err.Error(), "mutual TLS") {
			t.Errorf("client with %s: Dial = %v, want a mutual TLS error", name, err)
		}
	}
}

// TestStalledFileAborted: a file accepted but never sent data is aborted
// after the progress timeout with a NACK naming the stall, although the
// peer keeps the connection alive with PINGs; the connection stays up and
// the file can be offered again.
func TestStalledFileAborted(t *testing.T) {
	aborts := make(chan string, 4)
	h := &fakeHandler{accept: func(_ context.Context, _ Hello, o Offer) (Sink, error) {
		return &fakeSink{abort: func() { aborts <- o.Name }}, nil
	}}
	const timeout = 300 * time.Millisecond
	addr := startServer(t, &Server{Handler: h, ProgressTimeout: timeout})
	p := rawHello(t, addr)
	o := Offer{Volume: "vol1", Name: "0000000000000001.aimj", Seq: 1, Size: 100}
	p.send(Msg{Type: TypeOffer, ID: 1, Offer: o})
	if m := p.read(); m.Type != TypeAccept {
		t.Fatalf("offer answered %s", m.Type)
	}
	start := time.Now()
	var nack Msg
	for nack.Type != TypeNack { // ping the connection; only DATA is progress
		p.send(Msg{Type: TypePing, ID: 7})
		if m := p.read(); m.Type == TypeNack {
			nack = m
			p.read() // the PONG of this ping
		}
		time.Sleep(20 * time.Millisecond)
		if time.Since(start) > 10*time.Second {
			t.Fatal("no NACK 10s after the offer, although no data came")
		}
	}
	if waited := time.Since(start); waited < timeout {
		t.Errorf("aborted after %v, before the progress timeout %v", waited, timeout)
	}
	if nack.ID != 1 || nack.Code != CodeBadOffer || !strings.Contains(nack.Text, "no DATA for") {
		t.Errorf("NACK id %d code %s %q, want id 1 bad-offer naming the stall", nack.ID, nack.Code, nack.Text)
	}
	if name := <-aborts; name != o.Name {
		t.Errorf("aborted %s", name)
	}
	p.expectAlive()
	p.send(Msg{Type: TypeOffer, ID: 2, Offer: o}) // offered again: accepted again
	if m := p.read(); m.Type != TypeAccept {
		t.Fatalf("second offer answered %s", m.Type)
	}
}

// TestSilentConnectionsHold: connections that never start a handshake hold
// a slot for the handshake timeout at most; past the cap new ones are
// closed at once; a genuine client gets in once slots free, and the
// server never stops serving.
func TestSilentConnectionsHold(t *testing.T) {
	store := newMemStore()
	addr := startServer(t, &Server{Handler: store, MaxConns: 8, HandshakeTimeout: 300 * time.Millisecond})
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range 40 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, nc)
	}
	b, o := testFile(1, 300<<10)
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var c *Client
		if c, err = Dial(context.Background(), addr, Hello{Node: "src"}, clientAuth()); err == nil {
			err = c.Push(context.Background(), o, bytes.NewReader(b))
			c.Close()
			if err == nil {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no genuine push within 10s of 40 silent connections: %v", err)
	}
	if got, ok := store.get(key(o)); !ok || !bytes.Equal(got, b) {
		t.Fatal("the genuine file was not stored")
	}
}
