package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aimwan/aimwan/internal/units"
)

// progress reports a long job's progress on stderr: a bar redrawn in place
// on a terminal (or when asked), otherwise a plain line every few seconds,
// so logs of a non-interactive run stay readable.
type progress struct {
	w     io.Writer
	what  string
	total int64 // 0 = unknown
	bar   bool
	every time.Duration
	start time.Time
	last  time.Time
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newProgress(w *os.File, what string, total int64, forceBar bool) *progress {
	p := &progress{w: w, what: what, total: total, bar: forceBar || isTerminal(w), start: time.Now()}
	p.every = 5 * time.Second
	if p.bar {
		p.every = 200 * time.Millisecond
	}
	return p
}

// update reports done bytes (throttled).
func (p *progress) update(done int64) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	line := p.line(done, now)
	if p.bar {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// finish ends the bar's line.
func (p *progress) finish(done int64) {
	p.last = time.Time{}
	p.update(done)
	if p.bar {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) line(done int64, now time.Time) string {
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	if p.total <= 0 {
		return fmt.Sprintf("%s: %s, %s/s", p.what, units.FormatSize(done), units.FormatSize(int64(rate)))
	}
	frac := min(float64(done)/float64(p.total), 1)
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	const width = 30
	fill := int(frac * width)
	bar := strings.Repeat("#", fill) + strings.Repeat(".", width-fill)
	if !p.bar {
		bar = ""
	} else {
		bar = "[" + bar + "] "
	}
	return fmt.Sprintf("%s: %s%3.0f%% %s of %s, %s/s, ETA %s", p.what, bar, frac*100, units.FormatSize(done),
		units.FormatSize(p.total), units.FormatSize(int64(rate)), eta)
}

// sizeOf is the size of a file or block device (0 when unknown).
func sizeOf(f *os.File) int64 {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		return st.Size()
	}
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0
	}
	return n
}
