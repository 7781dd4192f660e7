package link

import (
	"context"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// arrivals records what a pipe delivered and when (virtual time).
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
	data  [][]byte
}

func (a *arrivals) deliver(b []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, time.Now())
	a.data = append(a.data, b)
}

func (a *arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.times)
}

// runPipe starts p.Serve in the bubble and returns a stop function that
// ends it and waits.
func runPipe(t *testing.T, p *Pipe) func() {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
}

func newTestPipe(t *testing.T, cfg PipeConfig) (*Pipe, *linkMetrics) {
	t.Helper()
	m := newMetrics()
	p, err := NewPipe(cfg, "up", m)
	if err != nil {
		t.Fatalf("NewPipe: %v", err)
	}
	return p, m
}

func TestPipeRateAndDelay(t *testing.T) {
	cases := []struct {
		name           string
		rate           float64
		delay, jitter  time.Duration
		packets, size  int
		overhead       int
		wantLastOffset time.Duration // arrival of the last packet after the start
	}{
		{"2mbit 40ms rtt", 250_000, 20 * time.Millisecond, 0, 500, 1000, 0, 2*time.Second + 20*time.Millisecond},
		{"overhead counts", 250_000, 20 * time.Millisecond, 0, 500, 948, 52, 2*time.Second + 20*time.Millisecond},
		{"fast line", 125_000_000, 5 * time.Millisecond, 0, 1000, 1250, 0, 10*time.Millisecond + 5*time.Millisecond},
		{"jitter stays below bound", 250_000, 20 * time.Millisecond, 5 * time.Millisecond, 100, 1000, 0, 400*time.Millisecond + 20*time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, _ := newTestPipe(t, PipeConfig{Rate: c.rate, Delay: c.delay, Jitter: c.jitter})
				stop := runPipe(t, p)
				defer stop()
				var a arrivals
				start := time.Now()
				for i := range c.packets {
					b := make([]byte, c.size)
					b[0] = byte(i)
					if err := p.SendWait(t.Context(), b, c.overhead, a.deliver); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(c.wantLastOffset + c.jitter + time.Second)
				if a.count() != c.packets {
					t.Fatalf("delivered %d of %d packets", a.count(), c.packets)
				}
				last := a.times[len(a.times)-1].Sub(start)
				if last < c.wantLastOffset || last > c.wantLastOffset+c.jitter {
					t.Errorf("last packet arrived at %v, want %v (+ jitter %v)", last, c.wantLastOffset, c.jitter)
				}
				first := a.times[0].Sub(start)
				wantFirst := c.delay + time.Duration(float64(c.size+c.overhead)/c.rate*float64(time.Second))
				if first < wantFirst || first > wantFirst+c.jitter {
					t.Errorf("first packet arrived at %v, want %v (serialization + delay)", first, wantFirst)
				}
				for i := range a.data {
					if a.data[i][0] != byte(i) {
						t.Fatalf("packet %d arrived out of order", i)
					}
				}
			})
		})
	}
}

func TestPipeDropTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, m := newTestPipe(t, PipeConfig{Rate: 100_000, Queue: 10_000})
		stop := runPipe(t, p)
		defer stop()
		var a arrivals
		accepted := 0
		for range 100 {
			if p.Send(make([]byte, 1000), 0, a.deliver) {
				accepted++
			}
		}
		if accepted != 10 {
			t.Errorf("a 10000-byte queue accepted %d packets of 1000 bytes, want 10", accepted)
		}
		if q := p.QueueBytes(); math.Abs(q-10_000) > 1 {
			t.Errorf("queue holds %v bytes, want 10000", q)
		}
		if got := testutil.ToFloat64(m.drops.WithLabelValues(DropQueue)); got != 90 {
			t.Errorf("queue drops = %v, want 90", got)
		}
		time.Sleep(50 * time.Millisecond) // 5000 bytes drained
		if !p.Send(make([]byte, 1000), 0, a.deliver) {
			t.Error("a packet was dropped although the queue had drained")
		}
		time.Sleep(time.Second)
		if a.count() != 11 {
			t.Errorf("delivered %d packets, want 11", a.count())
		}
	})
}

func TestPipeImpairments(t *testing.T) {
	const n = 20000
	cases := []struct {
		name        string
		cfg         PipeConfig
		wantFrac    float64 // delivered / sent
		tolerance   float64
		wantReorder bool
	}{
		{"loss 1%", PipeConfig{Rate: math.Inf(1), Loss: 0.01}, 0.99, 0.003, false},
		{"loss 10%", PipeConfig{Rate: math.Inf(1), Loss: 0.1}, 0.90, 0.01, false},
		{"duplicate 5%", PipeConfig{Rate: math.Inf(1), Duplicate: 0.05}, 1.05, 0.008, false},
		{"reorder 5%", PipeConfig{Rate: 10_000_000, Reorder: 0.05, ReorderDelay: 5 * time.Millisecond, Queue: 1 << 30}, 1, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c.cfg.Seed = 42
				p, _ := newTestPipe(t, c.cfg)
				stop := runPipe(t, p)
				defer stop()
				var a arrivals
				for i := range n {
					b := []byte{byte(i >> 8), byte(i)}
					if !p.Send(b, 0, a.deliver) {
						t.Fatalf("packet %d dropped at the queue", i)
					}
				}
				time.Sleep(10 * time.Second)
				frac := float64(a.count()) / n
				if math.Abs(frac-c.wantFrac) > c.tolerance {
					t.Errorf("delivered fraction %.4f, want %.4f ± %.4f", frac, c.wantFrac, c.tolerance)
				}
				late := 0
				for i := 1; i < len(a.data); i++ {
					prev := int(a.data[i-1][0])<<8 | int(a.data[i-1][1])
					cur := int(a.data[i][0])<<8 | int(a.data[i][1])
					if cur < prev {
						late++
					}
				}
				if c.wantReorder != (late > 0) {
					t.Errorf("%d packets overtaken, want reordering %v", late, c.wantReorder)
				}
			})
		})
	}
}

// TestPipeCrossTraffic: a stream shares the line with 30% cross traffic and
// gets the rest.
func TestPipeCrossTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate, cross = 250_000, 70_000
		p, m := newTestPipe(t, PipeConfig{Rate: rate, Cross: cross, Queue: 64 << 10})
		stop := runPipe(t, p)
		defer stop()
		var a arrivals
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		sent := 0
		for ctx.Err() == nil {
			if p.SendWait(ctx, make([]byte, 1000), 0, a.deliver) == nil {
				sent += 1000
			}
		}
		got := float64(a.count()*1000) / 20
		if want := float64(rate - cross); math.Abs(got-want)/want > 0.02 {
			t.Errorf("stream goodput %.0f B/s beside %d B/s cross traffic, want %.0f ± 2%%", got, cross, want)
		}
		if c := testutil.ToFloat64(m.cross.WithLabelValues("up")); math.Abs(c/20-cross)/cross > 0.02 {
			t.Errorf("cross traffic carried %.0f B/s, want %d", c/20, cross)
		}
	})
}

func TestPipeOutage(t *testing.T) {
	cases := []struct {
		name    string
		backup  float64
		wantMin float64 // bytes delivered in 10 s, bounds
		wantMax float64
	}{
		// 10 s at 100 kB/s with the line down from 2 s to 6 s; what was queued
		// when it failed (up to 32 KiB) still arrives.
		{"down", 0, 590_000, 640_000},
		{"backup line at half rate", 50_000, 780_000, 820_000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, _ := newTestPipe(t, PipeConfig{Rate: 100_000, Delay: -1, BackupRate: c.backup,
					Outages: []Outage{{Start: 2 * time.Second, Duration: 4 * time.Second}}})
				stop := runPipe(t, p)
				defer stop()
				var a arrivals
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()
				for ctx.Err() == nil {
					p.SendWait(ctx, make([]byte, 1000), 0, a.deliver) //nolint:errcheck // ends with ctx
				}
				got := float64(a.count() * 1000)
				if got < c.wantMin || got > c.wantMax {
					t.Errorf("delivered %.0f bytes in 10 s, want %.0f..%.0f", got, c.wantMin, c.wantMax)
				}
			})
		})
	}
}

func TestPipeOutageDropsDatagrams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, m := newTestPipe(t, PipeConfig{Rate: 100_000, Outages: []Outage{{Start: time.Second, Duration: time.Second}}})
		stop := runPipe(t, p)
		defer stop()
		var a arrivals
		time.Sleep(1500 * time.Millisecond)
		if p.Send(make([]byte, 100), 0, a.deliver) {
			t.Error("datagram accepted while the line is down")
		}
		if got := testutil.ToFloat64(m.drops.WithLabelValues(DropOutage)); got != 1 {
			t.Errorf("outage drops = %v, want 1", got)
		}
	})
}

func TestMetricsRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := New(Config{Listen: "127.0.0.1:0", To: "127.0.0.1:1", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Listen: "127.0.0.1:0", To: "127.0.0.1:1", Metrics: reg}); err == nil {
		t.Error("registering a second relay's metrics on the same registry succeeded")
	}
	r.up.m.bytes.WithLabelValues("up").Add(1)
	n, err := testutil.GatherAndCount(reg, "aimwan_link_bytes_total", "aimwan_link_queue_bytes", "aimwan_link_drops_total")
	if err != nil || n != 8 {
		t.Errorf("gathered %d series (err %v), want 8 (bytes and queue per direction, 4 drop reasons)", n, err)
	}
}
