package nbd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestServeCancelClosesConnections(t *testing.T) {
	exp := newFileExport(t, t.TempDir(), 1<<20)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Exports: ExportMap{"vol1": exp}}).Serve(ctx, ln) }()
	inTransmission := connect(t, ln.Addr().String(), "vol1")
	if errno, _ := inTransmission.do(cmdWrite, 0, 0, 4, []byte("abcd")); errno != 0 {
		t.Fatalf("write errno %d", errno)
	}
	inHandshake := tdial(t, ln.Addr().String())
	inHandshake.greet(clientFixedNewstyl)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	inTransmission.expectEOF()
	inHandshake.expectEOF()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

func TestServerConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    Server
	}{
		{"no exports", Server{}},
		{"tiny MaxRequest", Server{Exports: ExportMap{}, MaxRequest: 100}},
		{"huge MaxRequest", Server{Exports: ExportMap{}, MaxRequest: 2 << 30}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.s.Serve(context.Background(), ln); err == nil {
				t.Fatal("Serve accepted an invalid configuration")
			}
			if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("listener not closed: %v", err)
			}
		})
	}
}

func TestErrnoOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want uint32
	}{
		{nil, errnoOK},
		{ENOSPC, errnoNoSpc},
		{fmt.Errorf("journal: %w", EPERM), errnoPerm},
		{&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, errnoNoSpc},
		{fmt.Errorf("w: %w", syscall.EROFS), errnoPerm},
		{errors.New("boom"), errnoIO},
	} {
		if got := errnoOf(tt.err); got != tt.want {
			t.Errorf("errnoOf(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestPipelined sends many requests before reading any reply, as qemu does:
// every reply carries its request's cookie and reads see earlier writes.
func TestPipelined(t *testing.T) {
	exp := newFileExport(t, t.TempDir(), 1<<20)
	c := connect(t, startServer(t, &Server{Exports: ExportMap{"vol1": exp}}), "vol1")
	const n = 64
	for i := range n {
		p := bytes.Repeat([]byte{byte(i)}, 4096)
		c.request(cmdWrite, 0, uint64(2*i), uint64(i)*4096, 4096, p)
		c.request(cmdRead, 0, uint64(2*i+1), uint64(i)*4096, 4096, nil)
	}
	for i := range 2 * n {
		cookie, errno := c.reply()
		if cookie != uint64(i) || errno != 0 {
			t.Fatalf("reply %d: cookie %d errno %d", i, cookie, errno)
		}
		if i%2 == 1 {
			data := make([]byte, 4096)
			c.readFull(data)
			if !bytes.Equal(data, bytes.Repeat([]byte{byte(i / 2)}, 4096)) {
				t.Fatalf("read %d does not see the write before it", i/2)
			}
		}
	}
	exp.checkInRange(t)
}
