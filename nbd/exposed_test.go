package nbd

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeListener has an address of our choosing and no connections: Accept
// blocks until Close. Nothing touches the network.
type fakeListener struct {
	addr   net.Addr
	closed chan struct{}
	once   sync.Once
}

func (l *fakeListener) Accept() (net.Conn, error) {
	<-l.closed
	return nil, net.ErrClosed
}
func (l *fakeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *fakeListener) Addr() net.Addr { return l.addr }

// A server bound beyond loopback warns that NBD has no authentication;
// on loopback (or a Unix socket) it does not.
func TestServeWarnsWhenExposed(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		warn bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 10809}, true},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 10809}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 10809}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 10809}, false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 10809}, false},
		{&net.UnixAddr{Name: "/run/aimwan.sock", Net: "unix"}, false},
	} {
		var buf bytes.Buffer
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return buf.Write(p)
		}), nil))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		srv := &Server{Exports: ExportMap{"x": &memExport{data: make([]byte, 4096)}}, Logger: log}
		if err := srv.Serve(ctx, &fakeListener{addr: tc.addr, closed: make(chan struct{})}); err != nil {
			t.Fatalf("%v: %v", tc.addr, err)
		}
		cancel()
		mu.Lock()
		warned := strings.Contains(buf.String(), "non-loopback")
		mu.Unlock()
		if warned != tc.warn {
			t.Errorf("%v: warned=%v, want %v (log: %q)", tc.addr, warned, tc.warn, buf.String())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
