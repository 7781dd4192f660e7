package link

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// startRelay runs a relay toward to on a loopback port until the test ends.
func startRelay(t testing.TB, to string, line PipeConfig) string {
	t.Helper()
	r, err := New(Config{Listen: "127.0.0.1:0", To: to, Line: line})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("relay did not stop within 5 s of cancel")
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	addr := r.Addr(wctx)
	if addr == nil {
		t.Fatal("relay did not start listening")
	}
	return addr.String()
}

// tcpEcho serves TCP and UDP echo on one loopback port until the test ends.
func echoServer(t testing.TB) string {
	t.Helper()
	pc, ln, err := listenBoth("127.0.0.1:0") // retries when TCP's port is taken
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.Go(func() error {
		buf := make([]byte, 64<<10)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return nil
			}
			pc.WriteTo(buf[:n], a) //nolint:errcheck
		}
	})
	g.Go(func() error {
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil
			}
			g.Go(func() error {
				defer c.Close()
				io.Copy(c, c) //nolint:errcheck
				return nil
			})
		}
	})
	t.Cleanup(func() { pc.Close(); ln.Close(); g.Wait() }) //nolint:errcheck
	return pc.LocalAddr().String()
}

func TestRelayUDPRoundTrip(t *testing.T) {
	relay := startRelay(t, echoServer(t), PipeConfig{Rate: 10_000_000, Delay: 5 * time.Millisecond})
	c, err := net.Dial("udp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2000)
	for i := range 5 {
		msg := []byte{byte(i), 'h', 'i'}
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if rtt := time.Since(start); rtt < 10*time.Millisecond {
			t.Errorf("round trip %v is shorter than the 10 ms RTT", rtt)
		}
		if !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo %q, want %q", buf[:n], msg)
		}
	}
}

func TestRelayTCPIntegrity(t *testing.T) {
	relay := startRelay(t, echoServer(t), PipeConfig{Rate: math.Inf(1), Delay: time.Millisecond})
	c, err := net.Dial("tcp", relay)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 3<<20)
	rand.Read(data)
	var g errgroup.Group
	g.Go(func() error {
		_, err := c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		return err
	})
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echoed %d bytes differ from the %d sent", len(got), len(data))
	}
}

func TestRelayConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no addresses", Config{}},
		{"negative rate", Config{Listen: "a:1", To: "b:1", Line: PipeConfig{Rate: -1}}},
		{"loss above 1", Config{Listen: "a:1", To: "b:1", Line: PipeConfig{Loss: 2}}},
		{"tiny queue", Config{Listen: "a:1", To: "b:1", Line: PipeConfig{Queue: 100}}},
		{"bad outage", Config{Listen: "a:1", To: "b:1", Line: PipeConfig{Outages: []Outage{{Start: time.Second}}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := New(c.cfg); !errors.Is(err, ErrBadConfig) {
				t.Fatalf("New = %v, want ErrBadConfig", err)
			}
		})
	}
}
