package transport

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aimwan/aimwan/sim/link"
)

func envF(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func TestSimExperiment(t *testing.T) {
	if os.Getenv("SIMEXP") == "" {
		t.Skip("SIMEXP not set")
	}
	countClient = true
	synctest.Test(t, func(t *testing.T) {
		rate := envF("RATE", 250e3)
		rtt := time.Duration(envF("RTT", 40)) * time.Millisecond
		line := link.PipeConfig{Rate: rate, Delay: rtt / 2, Loss: envF("LOSS", 0.001), Cross: envF("CROSS", 0), Seed: 7}
		cfg := Config{RTT: rtt}
		if envF("HINT", 1) > 0 {
			cfg.LinkRate = rate
		}
		s := newSimLine(t, line, cfg)
		cc := simCount
		if traceOn {
			s.pool.init()
			start := time.Now()
			s.pool.ctl.m.trace = func(f string, a ...any) { t.Logf("%7.3f "+f, append([]any{time.Since(start).Seconds()}, a...)...) }
		}
		ctx := context.Background()
		size := int(envF("MB", 4)) << 20
		files := int(envF("FILES", 4))
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		q := sampleQueue(s.link.Up())
		if traceOn {
			go func() {
				start := time.Now()
				for range 400 {
					time.Sleep(50 * time.Millisecond)
					e := s.pool.Estimates()
					t.Logf("%7.3f QUEUE %.0f rtt=%v", time.Since(start).Seconds(), s.link.Up().QueueBytes(), e.RTT)
				}
			}()
		}
		start := time.Now()
		last := start
		for i := range files {
			s.send(ctx, t, data)
			e := s.pool.Estimates()
			now := time.Now()
			t.Logf("file %d: %.1f%% of the line; est bw=%.0f pace=%.0f base=%v rtt=%v conns=%d backoffs=%d retries=%d", i,
				100*float64(size)/now.Sub(last).Seconds()/rate, e.Bottleneck, e.Pacing, e.BaseRTT, e.RTT, e.Conns, e.Backoffs, e.Retries)
			last = now
		}
		el := time.Since(start)
		qs := q.end()
		var mx, sum float64
		for _, v := range qs {
			mx = max(mx, v)
			sum += v
		}
		if cc != nil {
			t.Logf("client wrote %d datagrams, %d bytes (%.1f per datagram); part bytes %d; sizes %v", cc.n, cc.bytes, float64(cc.bytes)/float64(cc.n), size*files, cc.sizes)
		}
		t.Logf("goodput %.1f%% of the line over %v; queue max %.0f mean %.0f", 100*float64(size*files)/el.Seconds()/rate, el, mx, sum/float64(len(qs)))
	})
}

var traceOn = os.Getenv("TRACE") != ""

type countConn struct {
	net.PacketConn
	mu    sync.Mutex
	bytes int64
	n     int64
	sizes map[int]int
}

func (c *countConn) WriteTo(p []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	c.bytes += int64(len(p))
	c.n++
	if c.sizes == nil {
		c.sizes = map[int]int{}
	}
	if len(p) < 100 {
		c.sizes[len(p)]++
	} else {
		c.sizes[len(p)/100*100]++
	}
	c.mu.Unlock()
	return c.PacketConn.WriteTo(p, a)
}
