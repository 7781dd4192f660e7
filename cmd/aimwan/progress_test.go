package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, c := range []struct {
		name  string
		total int64
		bar   bool
		done  int64
		want  []string
	}{
		{"bar", 100 << 20, true, 50 << 20, []string{"[###############...............]", " 50%", "ETA 10s"}},
		{"plain", 100 << 20, false, 25 << 20, []string{" 25%", "ETA 15s"}},
		{"unknown size", 0, false, 25 << 20, []string{"25.0 MiB", "5.0 MiB/s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &progress{what: "priming x", total: c.total, bar: c.bar, start: start}
			got := p.line(c.done, start.Add(10*time.Second*time.Duration(c.done)/time.Duration(50<<20)))
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("line %q lacks %q", got, w)
				}
			}
			if !c.bar && strings.Contains(got, "[") {
				t.Errorf("plain line %q draws a bar", got)
			}
		})
	}
}

// TestProgressThrottles: off a terminal, a line every few seconds at most.
func TestProgressThrottles(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	p := newProgress(f, "priming x", 1<<30, false)
	for i := int64(1); i <= 100; i++ {
		p.update(i << 20)
	}
	p.finish(100 << 20)
	f.Close()
	b, _ := os.ReadFile(f.Name())
	if n := bytes.Count(b, []byte("\n")); n != 2 || bytes.Contains(b, []byte("\r")) {
		t.Fatalf("%d lines (want the first and the final one), carriage returns %v:\n%s", n, bytes.Contains(b, []byte("\r")), b)
	}
}
