package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aimwan/aimwan/internal/metrics"
	"github.com/aimwan/aimwan/reports"
)

// TestSimLinkRecord: `aimwan sim link --record DIR` appends the link's
// metrics to DIR/link.jsonl, readable by aimwan report.
func TestSimLinkRecord(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runSimLink(ctx, []string{"--listen", addr, "--to", "127.0.0.1:9", "--record", dir, "--metrics", "off"})
	}()
	path := filepath.Join(dir, "link.jsonl")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no recording at %s after 20s (run: %v)", path, <-done)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sim link: %v", err)
	}
	rec, err := reports.ReadRecording(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range rec.Samples {
		for k := range s.Values {
			if name, _, err := metrics.ParseKey(k); err == nil && name == metrics.LinkBytes {
				found = true
			}
		}
	}
	if len(rec.Samples) == 0 || !found {
		t.Fatalf("recording has %d samples, link bytes present: %v", len(rec.Samples), found)
	}
}
