package aimsrc

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aimwan/aimwan/journal"
)

// BenchmarkIngest measures NBD write ingest through the full capture path
// (NBD server, journal append, image write; shipping to an unreachable
// target, so files stay in the buffer) with 64 KiB writes to tmpfs, over
// several connections, and reports MB/s and journal metadata bytes per
// write, plus MB per CPU-second (meaningful on a busy shared machine).
// Run: go test -run '^$' -bench Ingest ./aimsrc/
func BenchmarkIngest(b *testing.B) {
	const (
		writeSize = 64 << 10
		size      = 256 << 20 // written round-robin, so the image stays small
		conns     = 4
	)
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = b.TempDir()
	}
	dir, err := os.MkdirTemp(base, "aimsrc-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	cfg := testConfig(b, dir, VolumeConfig{Name: "v1", Path: filepath.Join(dir, "v1.img"), Size: size})
	cfg.FileAge = time.Hour // size rotation only
	cfg.RetryMax = time.Hour
	n, stop := runNode(b, cfg)
	clients := make([]*nbdClient, conns)
	for i := range clients {
		clients[i] = mustDialNBD(b, n.NBDAddr().String(), "v1")
	}
	data := make([]byte, writeSize)
	for i := range data {
		data[i] = byte(i*31 + 7)
	}
	b.SetBytes(writeSize)
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < b.N; i += conns {
				if err := cl.write(data, int64(i)*writeSize%size); err != nil {
					errs <- err
					return
				}
			}
			errs <- cl.flush()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	stop() // seals the open file
	var files, total int64
	seqs, _ := listSealed(filepath.Join(cfg.Buffer, "v1"))
	for _, s := range seqs {
		if st, err := os.Stat(filepath.Join(cfg.Buffer, "v1", journal.FileName(s))); err == nil {
			total += st.Size()
			files++
		}
	}
	b.ReportMetric(float64(b.N)*writeSize/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(float64(total-int64(b.N)*writeSize)/float64(b.N), "meta-B/write")
	b.ReportMetric(float64(files), "files")
	// CPU time of the whole process (NBD client included): what the ingest
	// costs, independent of other load on a shared machine.
	b.ReportMetric(float64(b.N)*writeSize/1e6/cpu.Seconds(), "MB/cpu-s")
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
