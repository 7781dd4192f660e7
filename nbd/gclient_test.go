package nbd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestClientAgainstServer drives every Client request through the server
// onto a file export and reads the results back.
func TestClientAgainstServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp := newFileExport(t, t.TempDir(), 1<<20)
	addr := startServer(t, &Server{Exports: ExportMap{"vol1": exp}})
	c, err := Dial(ctx, addr, "vol1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Size() != 1<<20 {
		t.Fatalf("Size = %d, want %d", c.Size(), 1<<20)
	}
	data := bytes.Repeat([]byte("aimwan"), 2000)
	if err := c.WriteAt(data, 4096); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteZeroes(4096, 512); err != nil {
		t.Fatal(err)
	}
	if err := c.Trim(8192, 1024); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(data)
	clear(want[:512])
	clear(want[8192-4096 : 8192-4096+1024])
	got := make([]byte, len(data))
	if err := c.ReadAt(got, 4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was written, zeroed and trimmed")
	}
	if err := c.WriteAt(make([]byte, 4096), 1<<20); !errors.Is(err, ErrRange) {
		t.Errorf("write past the end: %v, want ErrRange (refused before sending)", err)
	}
	if err := c.Flush(); err != nil {
		t.Errorf("connection unusable after a refused request: %v", err)
	}
	if _, err := Dial(ctx, addr, "nope"); err == nil {
		t.Error("unknown export accepted")
	}
	c2, err := Dial(ctx, addr, "vol1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Flush(); err == nil {
		t.Error("a request after Abort succeeded")
	}
}

// TestClientRefusesNonNBD: a peer that does not greet like an NBD server.
func TestClientRefusesNonNBD(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dial(ctx, ln.Addr().String(), "a"); err == nil || !strings.Contains(err.Error(), "not a newstyle") {
		t.Fatalf("Dial = %v, want a 'not a newstyle' error", err)
	}
}
