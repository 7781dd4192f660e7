package journal

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time, so benchmarks can
// report a figure that does not depend on how loaded the machine is.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU time per op and the throughput one fully used core
// would reach (MB/s-core, bytes per op over CPU time per op).
func reportCPU(b *testing.B, start time.Duration, ops int, bytesPerOp int64) {
	if ops == 0 {
		return
	}
	per := float64(cpuTime()-start) / float64(ops)
	b.ReportMetric(per, "cpu-ns/op")
	if bytesPerOp > 0 && per > 0 {
		b.ReportMetric(float64(bytesPerOp)/per*1e3, "MB/s-core")
	}
}

// benchWriter opens a writer on tmpfs whose sealed files are deleted as
// soon as they are sealed (their sizes are summed), so long runs do not
// fill memory.
func benchWriter(b *testing.B, maxFile int64) (*Writer, *atomic.Int64) {
	dir := shmTempDir(b)
	var sealedBytes atomic.Int64
	w, _, err := OpenWriter(WriterConfig{
		Dir: dir, Volume: "bench", VolumeSize: 1 << 40, MaxFileSize: maxFile, MaxAge: 1 << 62,
		OnSeal: func(f SealedFile) {
			sealedBytes.Add(f.Size)
			os.Remove(filepath.Join(dir, f.Name))
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return w, &sealedBytes
}

// reportOverhead closes w and reports the journal's metadata bytes (header,
// index, footer) per record.
func reportOverhead(b *testing.B, w *Writer, sealed *atomic.Int64, records int, payload int64) {
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	if records > 0 {
		b.ReportMetric(float64(sealed.Load()-payload)/float64(records), "meta-B/write")
	}
}

func benchmarkWrite(b *testing.B, size int, maxFile int64, syncEvery int) {
	w, sealed := benchWriter(b, maxFile)
	data := opData(1, int64(size))
	b.SetBytes(int64(size))
	b.ResetTimer()
	cpu0 := cpuTime()
	n := 0
	for i := 0; b.Loop(); i++ {
		if _, err := w.Write(int64(i%1024)*int64(size), data); err != nil {
			b.Fatal(err)
		}
		if syncEvery > 0 && i%syncEvery == 0 {
			if err := w.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.StopTimer()
	reportCPU(b, cpu0, n, int64(size))
	reportOverhead(b, w, sealed, n, int64(n)*int64(size))
}

// BenchmarkWriter64K: 64 KiB writes into 4 MiB files on tmpfs.
func BenchmarkWriter64K(b *testing.B) { benchmarkWrite(b, 64<<10, DefaultMaxFileSize, 0) }

// BenchmarkWriter64KSync16: as above with a Sync every 16 writes (a FLUSH
// per MiB).
func BenchmarkWriter64KSync16(b *testing.B) { benchmarkWrite(b, 64<<10, DefaultMaxFileSize, 16) }

// BenchmarkWriter4K: 4 KiB writes into 4 MiB files.
func BenchmarkWriter4K(b *testing.B) { benchmarkWrite(b, 4<<10, DefaultMaxFileSize, 0) }

// BenchmarkWriter64KParallel: 64 KiB writes from several goroutines.
func BenchmarkWriter64KParallel(b *testing.B) {
	w, sealed := benchWriter(b, DefaultMaxFileSize)
	data := opData(1, 64<<10)
	b.SetBytes(64 << 10)
	var n atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.Write(0, data); err != nil {
				b.Error(err)
				return
			}
			n.Add(1)
		}
	})
	b.StopTimer()
	reportCPU(b, cpu0, int(n.Load()), 64<<10)
	reportOverhead(b, w, sealed, int(n.Load()), n.Load()*64<<10)
}

// BenchmarkParse4M: full validation of a 4 MiB file of 64 KiB writes.
func BenchmarkParse4M(b *testing.B) {
	dir := shmTempDir(b)
	var name string
	w, _, err := OpenWriter(WriterConfig{Dir: dir, Volume: "bench", VolumeSize: 1 << 30, OnSeal: func(f SealedFile) { name = f.Name }})
	if err != nil {
		b.Fatal(err)
	}
	data := opData(1, 64<<10)
	for i := 0; i < 64; i++ {
		if _, err := w.Write(int64(i)<<16, data); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(name, raw); err != nil {
			b.Fatal(err)
		}
	}
}
