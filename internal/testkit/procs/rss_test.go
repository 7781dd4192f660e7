package procs

import (
	"os"
	"testing"
)

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		err  bool
	}{
		{"status", "Name:\taimwan\nVmPeak:\t 2000000 kB\nVmHWM:\t  812345 kB\nVmRSS:\t  700000 kB\n", 812345 << 10, false},
		{"zero", "VmHWM:\t0 kB\n", 0, false},
		{"no line (a kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0, true},
		{"no unit", "VmHWM:\t812345\n", 0, true},
		{"other unit", "VmHWM:\t812345 MB\n", 0, true},
		{"not a number", "VmHWM:\tlots kB\n", 0, true},
		{"negative", "VmHWM:\t-5 kB\n", 0, true},
		{"overflow", "VmHWM:\t99999999999999999 kB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmHWM([]byte(tt.in))
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.err)
			}
		})
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if n, err := parseVmHWM(b); err != nil || n <= 0 {
		t.Errorf("this process's peak RSS: %d, %v", n, err)
	}
}

// FuzzParseVmHWM: any /proc/PID/status content gives a size or an error,
// never a panic or a negative size.
func FuzzParseVmHWM(f *testing.F) {
	f.Add([]byte("VmHWM:\t  812345 kB\n"))
	f.Add([]byte("Name:\tx\nVmHWM:\t1 kB\nVmRSS:\t1 kB\n"))
	f.Add([]byte("VmHWM:"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := parseVmHWM(b); err == nil && n < 0 {
			t.Fatalf("negative size %d from %q", n, b)
		}
	})
}
