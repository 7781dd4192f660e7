package nbd

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// BenchmarkWriteIngest64K measures NBD WRITE ingest of 64 KiB requests over
// loopback into a file on /dev/shm (tmpfs), with 16 requests in flight as a
// pipelining client (qemu, nbdcopy) keeps them. Target for the source node:
// >= 200 MB/s on the 2-core machine.
//
//	go test -run XXX -bench WriteIngest -benchtime 2000x ./nbd/
func BenchmarkWriteIngest64K(b *testing.B) {
	const (
		reqSize  = 64 << 10
		volSize  = 64 << 20
		inFlight = 16
	)
	dir := "/dev/shm"
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = b.TempDir()
	} else {
		d, err := os.MkdirTemp(dir, "nbd-bench-")
		if err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	exp := newFileExport(b, dir, volSize)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := startServer(b, &Server{Exports: ExportMap{"vol1": exp}, Logger: log})
	c := connect(b, addr, "vol1")
	payload := make([]byte, reqSize)
	for i := range payload {
		payload[i] = byte(i * 7)
	}

	replies := make(chan uint32, inFlight)
	done := make(chan struct{})
	go func() { // reply reader
		defer close(done)
		for range b.N {
			_, errno := c.reply()
			replies <- errno
		}
	}()
	b.SetBytes(reqSize)
	b.ResetTimer()
	for i := range b.N {
		if i >= inFlight { // keep inFlight requests outstanding
			if errno := <-replies; errno != 0 {
				b.Fatalf("write errno %d", errno)
			}
		}
		off := uint64(i*reqSize) % volSize
		c.request(cmdWrite, 0, uint64(i), off, reqSize, payload)
	}
	<-done
	for len(replies) > 0 {
		if errno := <-replies; errno != 0 {
			b.Fatalf("write errno %d", errno)
		}
	}
	b.StopTimer()
}
