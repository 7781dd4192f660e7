package nbd

import (
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
