package aimsrc

import (
	"testing"
	"time"
)

func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1_000_000, 0)
	if r := m.rate(t0); r != 0 {
		t.Fatalf("rate before any ack: %v", r)
	}
	for i := range 10 { // 1000 bytes a second for 10 s
		m.add(t0.Add(time.Duration(i)*time.Second), 1000)
	}
	if r := m.rate(t0.Add(9 * time.Second)); r != 1000 {
		t.Errorf("rate after 10 s at 1000 B/s: %v", r)
	}
	// Over the full window, 10 s of acks in 30 s.
	if r := m.rate(t0.Add(29 * time.Second)); r != 10000.0/30 {
		t.Errorf("rate 30 s in: %v, want %v", r, 10000.0/30)
	}
	// Everything left the window.
	if r := m.rate(t0.Add(40 * time.Second)); r != 0 {
		t.Errorf("rate after the window: %v", r)
	}
	// A long pause clears every bucket, then acks count again.
	m.add(t0.Add(time.Hour), 3000)
	if r := m.rate(t0.Add(time.Hour)); r != 100 {
		t.Errorf("rate after a pause: %v, want 100", r)
	}
}

func TestETA(t *testing.T) {
	for _, c := range []struct {
		pending int64
		rate    float64
		want    float64
	}{{0, 0, 0}, {0, 100, 0}, {1000, 0, -1}, {1000, 250, 4}} {
		if got := eta(c.pending, c.rate); got != c.want {
			t.Errorf("eta(%d, %v) = %v, want %v", c.pending, c.rate, got, c.want)
		}
	}
}
