package accept

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/testkit"
)

var quiet = slog.New(slog.DiscardHandler)

// flakyListener fails its first accepts with errs, then accepts from a real
// listener.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		f.mu.Unlock()
		return nil, err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// echoServe serves ln with Serve (each connection echoes) and returns a stop
// function giving Serve's result.
func echoServe(t *testing.T, ln net.Listener, cfg Config) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, cfg, func(ctx context.Context, nc net.Conn) {
			stop := context.AfterFunc(ctx, func() { nc.Close() })
			defer stop()
			io.Copy(nc, nc)
		})
	}()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Serve did not return within 10s of cancel")
		}
	}
}

// echo checks that a new connection to addr is served.
func echo(addr string) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte("x")); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(nc, b); err != nil {
		return fmt.Errorf("no echo: %w", err)
	}
	return nil
}

// TestTemporaryErrorsRetried: accept failing with EMFILE, ENFILE and
// ECONNABORTED (as the kernel reports them, in a *net.OpError) does not
// end Serve: it backs off and serves the next connection.
func TestTemporaryErrorsRetried(t *testing.T) {
	var errs []error
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.EMFILE, syscall.EMFILE} {
		errs = append(errs, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", e)})
	}
	fl := &flakyListener{Listener: listen(t), errs: errs}
	l := Limit(fl, Config{Name: "test", Logger: quiet})
	stop := echoServe(t, l, Config{})
	if err := echo(fl.Addr().String()); err != nil {
		t.Fatalf("after temporary errors: %v", err)
	}
	if got := l.Retries(); got != 5 {
		t.Errorf("retries %d, want 5", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestPermanentErrorEndsServe: an error that is not temporary ends Serve
// with it.
func TestPermanentErrorEndsServe(t *testing.T) {
	bad := errors.New("listener broken")
	fl := &flakyListener{Listener: listen(t), errs: []error{bad}}
	err := Serve(context.Background(), fl, Config{Logger: quiet}, func(context.Context, net.Conn) {})
	if !errors.Is(err, bad) {
		t.Fatalf("Serve = %v, want %v", err, bad)
	}
}

func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{net.ErrClosed, false},
		{errors.New("x"), false},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EBADF)}, false},
	} {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestCaps: connections over MaxConns (or MaxPerHost from one IP) are
// closed at once; closing one frees its slot; another host still gets in
// while one host is at its cap.
func TestCaps(t *testing.T) {
	ln := listen(t)
	l := Limit(ln, Config{Name: "test", MaxConns: 4, MaxPerHost: 3, Logger: quiet})
	stop := echoServe(t, l, Config{})
	defer stop()
	addr := ln.Addr().String()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 3 { // the per-host cap from 127.0.0.1
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
	}
	testkit.WaitFor(t, 5*time.Second, "3 connections admitted", func() bool { return l.Open() == 3 })
	if err := echo(addr); err == nil {
		t.Fatal("a 4th connection from the same host was served past MaxPerHost 3")
	}
	// Another loopback address is another host.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	held = append(held, other)
	testkit.WaitFor(t, 5*time.Second, "the other host admitted", func() bool { return l.Open() == 4 })
	nc, err := d.Dial("tcp", addr)
	if err == nil {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Error("a 5th connection was served past MaxConns 4")
		}
		nc.Close()
	}
	if l.Refused() < 2 {
		t.Errorf("refused %d, want at least 2", l.Refused())
	}
	held[0].Close()
	held = held[1:]
	testkit.WaitFor(t, 5*time.Second, "a slot freed", func() bool { return l.Open() == 3 })
	if err := echo(addr); err != nil {
		t.Fatalf("after a connection closed, a new one was not served: %v", err)
	}
}

// TestCloseEndsBackoff: closing the listener during a backoff makes Accept
// return at once.
func TestCloseEndsBackoff(t *testing.T) {
	var errs []error
	for range 100 {
		errs = append(errs, &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)})
	}
	l := Limit(&flakyListener{Listener: listen(t), errs: errs}, Config{Logger: quiet})
	done := make(chan error, 1)
	go func() { _, err := l.Accept(); done <- err }()
	testkit.WaitFor(t, 5*time.Second, "backing off", func() bool { return l.Retries() >= 3 })
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still backing off 5s after Close")
	}
}
