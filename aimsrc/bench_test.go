package aimsrc

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
	"github.com/aimwan/aimwan/nbd"
)

const (
	benchWrite = 64 << 10
	benchSize  = 256 << 20 // written round-robin, so the image stays small
	benchConns = 4
)

// BenchmarkIngest measures NBD write ingest of 64 KiB writes over 4
// connections to tmpfs. "capture" is the full path (NBD server, journal
// append with CRC32C and SHA-256, image write; pushing to an unreachable
// target, so files stay in the buffer) and reports MB/s, journal metadata
// bytes per write and MB per CPU-second of the whole process (meaningful on
// a busy shared machine). "null-export" is the same client and NBD server
// with an export that discards writes: the cost of everything but capture.
// Run: go test -run '^$' -bench Ingest ./aimsrc/
func BenchmarkIngest(b *testing.B) {
	b.Run("capture", benchCapture)
	b.Run("null-export", benchNull)
}

func benchCapture(b *testing.B) {
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = b.TempDir()
	}
	dir, err := os.MkdirTemp(base, "aimsrc-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	cfg := testConfig(b, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: benchSize})
	cfg.FileAge = time.Hour // size rotation only
	cfg.RetryMax = time.Hour
	n, stop := runNode(b, cfg)
	runIngest(b, n.NBDAddr().String())
	stop() // seals the open file
	var files, total int64
	seqs, _ := journal.ListSealed(filepath.Join(cfg.Buffer, "v1"))
	for _, s := range seqs {
		if st, err := os.Stat(filepath.Join(cfg.Buffer, "v1", journal.FileName(s))); err == nil {
			total += st.Size()
			files++
		}
	}
	b.ReportMetric(float64(total-int64(b.N)*benchWrite)/float64(b.N), "meta-B/write")
	b.ReportMetric(float64(files), "files")
}

// nullExport accepts every request and stores nothing.
type nullExport struct{}

func (nullExport) Size() int64                                 { return benchSize }
func (nullExport) ReadOnly() bool                              { return false }
func (nullExport) ReadAt(p []byte, off int64) error            { clear(p); return nil }
func (nullExport) WriteAt(p []byte, off int64, fua bool) error { return nil }
func (nullExport) WriteZeroes(off, n int64, noHole, fua bool) error {
	return nil
}
func (nullExport) Trim(off, n int64) error { return nil }
func (nullExport) Flush() error            { return nil }

func benchNull(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &nbd.Server{Exports: nbd.ExportMap{"v1": nullExport{}}, Logger: testLogger(b)}
	go func() { done <- srv.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	runIngest(b, ln.Addr().String())
}

// runIngest writes b.N 64 KiB writes over several connections, flushes, and
// reports MB/s and MB per CPU-second.
func runIngest(b *testing.B, addr string) {
	clients := make([]*nbdClient, benchConns)
	for i := range clients {
		clients[i] = mustDialNBD(b, addr, "v1")
	}
	data := make([]byte, benchWrite)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	b.SetBytes(benchWrite)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, benchConns)
	for c, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < b.N; i += benchConns {
				if err := cl.write(data, int64(i)*benchWrite%benchSize); err != nil {
					errs <- err
					return
				}
			}
			errs <- cl.flush()
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*benchWrite/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(b.N)*benchWrite/1e6/cpu.Seconds(), "MB/cpu-s")
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
