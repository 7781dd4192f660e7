package procs

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

// PeakRSS is the current run's peak resident set size so far (VmHWM of
// /proc/PID/status), in bytes. The high-water mark only grows, so reading it
// just before the process stops gives the peak of the whole run.
func (p *Proc) PeakRSS() (int64, error) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || p.Exited() {
		return 0, fmt.Errorf("%s: %w", p.Name, ErrExited)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s peak RSS: %w", p.Name, err)
	}
	return parseVmHWM(b)
}

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
