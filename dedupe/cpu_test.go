package dedupe

import (
	"syscall"
	"testing"
	"time"
)

// cpuNow is the CPU time (user+system) used by the process so far. The
// machine is shared, so benchmarks report throughput per CPU second
// ("cpuMB/s") next to wall-clock MB/s; run them with GOMAXPROCS=1 so the
// CPU time is one core's.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuLoop runs body under b.Loop and reports MB per CPU second.
func cpuLoop(b *testing.B, bytesPerOp int, body func(i int)) {
	b.SetBytes(int64(bytesPerOp))
	t0 := cpuNow()
	n := 0
	for i := 0; b.Loop(); i++ {
		body(i)
		n++
	}
	if d := (cpuNow() - t0).Seconds(); d > 0 {
		b.ReportMetric(float64(n)*float64(bytesPerOp)/d/1e6, "cpuMB/s")
	}
}
