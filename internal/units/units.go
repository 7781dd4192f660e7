// Package units parses and formats the human units that aimwan's flags and
// YAML files use: sizes ("4MiB", "12G"), rates ("2mbit", "240KB/s") and the
// two special rates "unlimited" and "paused".
//
// Sizes are binary: K, KB, KiB all mean 1024 bytes, as storage users expect
// of disk and buffer sizes. Rates follow network convention: SI multiples
// (1000), with "bit"-suffixed units counting bits per second and "B/s"
// units counting bytes per second.
package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid value")

var sizeSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"tib", 1 << 40}, {"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"tb", 1 << 40}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10},
	{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10},
	{"b", 1}, {"", 1},
}

// ParseSize parses a byte size such as "4096", "64K", "4MiB", "12G" or
// "1.5GB". Multiples are binary (1K = 1024).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, suf := range sizeSuffixes {
		if !strings.HasSuffix(t, suf.suffix) {
			continue
		}
		num := strings.TrimSpace(strings.TrimSuffix(t, suf.suffix))
		if num == "" {
			break
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			break
		}
		total := v * float64(suf.mult)
		if total > math.MaxInt64/2 {
			return 0, fmt.Errorf("size %q: too large: %w", s, ErrSyntax)
		}
		return int64(math.Round(total)), nil
	}
	return 0, fmt.Errorf("size %q: want a number with an optional unit (K, M, G, T, KiB, MB...): %w", s, ErrSyntax)
}

var rateSuffixes = []struct {
	suffix string
	mult   float64 // bytes per second per unit
}{
	{"gbit/s", 1e9 / 8}, {"mbit/s", 1e6 / 8}, {"kbit/s", 1e3 / 8}, {"bit/s", 1.0 / 8},
	{"gbps", 1e9 / 8}, {"mbps", 1e6 / 8}, {"kbps", 1e3 / 8}, {"bps", 1.0 / 8},
	{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8},
	{"gb/s", 1e9}, {"mb/s", 1e6}, {"kb/s", 1e3}, {"b/s", 1},
}

// ParseRate parses a rate into bytes per second: "2mbit" (2,000,000 bits/s
// = 250,000 B/s), "240KB/s", "1.5MB/s", "unlimited" (+Inf) or "paused" (0).
func ParseRate(s string) (float64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "unlimited", "inf", "none":
		return math.Inf(1), nil
	case "paused", "pause", "0":
		return 0, nil
	}
	for _, suf := range rateSuffixes {
		if !strings.HasSuffix(t, suf.suffix) {
			continue
		}
		num := strings.TrimSpace(strings.TrimSuffix(t, suf.suffix))
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			break
		}
		return v * suf.mult, nil
	}
	return 0, fmt.Errorf("rate %q: want e.g. 2mbit, 512kbit, 240KB/s, unlimited or paused: %w", s, ErrSyntax)
}

// FormatSize formats n bytes with a binary unit, e.g. "4.0 MiB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f /= unit
		if math.Abs(f) < unit || u == "TiB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// FormatSizeDecimal formats n bytes with a decimal unit, as rates in KB/s
// are: "24.0 MB" (10^6 bytes), "1.2 GB". Reports and the bench's terminal
// lines use it, so the sizes and rates they show share one unit system
// (sizes given as input stay binary: ParseSize).
func FormatSizeDecimal(n int64) string {
	const unit = 1000
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"KB", "MB", "GB", "TB"} {
		f /= unit
		if math.Abs(f) < unit-0.05 || u == "TB" {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// FormatRate formats a rate in bytes per second, e.g. "240.0 KB/s";
// +Inf is "unlimited" and 0 is "paused".
func FormatRate(bps float64) string {
	switch {
	case math.IsInf(bps, 1):
		return "unlimited"
	case bps == 0:
		return "paused"
	case bps >= 1e9:
		return fmt.Sprintf("%.1f GB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f MB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f KB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f B/s", bps)
}
