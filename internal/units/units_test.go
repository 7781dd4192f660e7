package units

import (
	"errors"
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"4096", 4096}, {"64K", 64 << 10}, {"64KiB", 64 << 10}, {"4MiB", 4 << 20}, {"4mb", 4 << 20},
		{"12G", 12 << 30}, {"1.5GB", 3 << 29}, {" 2 MiB ", 2 << 20}, {"0", 0}, {"1T", 1 << 40}, {"512b", 512},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "K", "-1M", "abc", "1.2.3G", "NaN", "1e300G", "4 MiBs"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := ParseSize(bad); !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseSize(%q) error = %v; want ErrSyntax", bad, err)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{
		{"2mbit", 250000}, {"2Mbit/s", 250000}, {"512kbit", 64000}, {"240KB/s", 240000},
		{"1.5MB/s", 1.5e6}, {"8bit", 1}, {"1gbit", 125e6}, {"paused", 0}, {"unlimited", math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "fast", "2", "-1mbit", "mbit", "2 parsecs"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := ParseRate(bad); !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseRate(%q) error = %v; want ErrSyntax", bad, err)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	if got := FormatSize(4 << 20); got != "4.0 MiB" {
		t.Errorf("FormatSize = %q", got)
	}
	if got := FormatSize(100); got != "100 B" {
		t.Errorf("FormatSize = %q", got)
	}
	for n, want := range map[int64]string{999: "999 B", 1000: "1.0 KB", 24_000_000: "24.0 MB", 999_990: "1.0 MB",
		752 << 20: "788.5 MB", 36e9: "36.0 GB", -2500: "-2.5 KB", 5e15: "5000.0 TB"} {
		if got := FormatSizeDecimal(n); got != want {
			t.Errorf("FormatSizeDecimal(%d) = %q, want %q", n, got, want)
		}
	}
	if got := FormatRate(240000); got != "240.0 KB/s" {
		t.Errorf("FormatRate = %q", got)
	}
	if got := FormatRate(math.Inf(1)); got != "unlimited" {
		t.Errorf("FormatRate = %q", got)
	}
	for _, n := range []int64{1 << 10, 5 << 20, 12 << 30} {
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Errorf("round trip %d -> %q -> %d, %v", n, FormatSize(n), back, err)
		}
	}
}
