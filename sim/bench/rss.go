package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// maxKB bounds a /proc size in kB (1 PiB), so it converts to bytes without
// overflow.
const maxKB = 1 << 40

// parseVmHWM reads VmHWM, the peak resident set size, from the contents of
// /proc/PID/status ("VmHWM:\t  123456 kB"), in bytes.
func parseVmHWM(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: VmHWM %q: want a size in kB", rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > maxKB {
			return 0, fmt.Errorf("proc status: VmHWM %q: not a size in kB", f[0])
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("proc status: no VmHWM line")
}

// peakRSS is the process's peak resident set size so far.
func (d *daemon) peakRSS() (int64, error) {
	if d.cmd == nil || d.exited() {
		return 0, fmt.Errorf("%s: %w", d.name, ErrExited)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s peak RSS: %w", d.name, err)
	}
	return parseVmHWM(b)
}

// recordPeakRSS stores each running daemon's peak resident set size in
// into, under its name with suffix (e.g. "/optimize" for a proxy's phase).
// The high-water mark only grows, so reading it just before a daemon stops
// gives the peak of its whole life.
func (c *chain) recordPeakRSS(into map[string]int64, proxySuffix string) {
	for _, d := range c.daemons() {
		rss, err := d.peakRSS()
		if err != nil {
			c.cfg.Logger.Warn("bench: peak RSS", "daemon", d.name, "err", err)
			continue
		}
		name := d.name
		if d == c.proxySrc || d == c.proxyDst {
			name += proxySuffix
		}
		into[name] = rss
	}
}
