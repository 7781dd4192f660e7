package link

import (
	"container/heap"
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Header overheads charged on the line per packet, besides the payload:
// IPv4 + UDP, and IPv4 + TCP with the timestamp option.
const (
	OverheadUDP = 28
	OverheadTCP = 52
)

// Drop reasons, the values of the reason label of aimwan_link_drops_total.
const (
	DropQueue  = "queue"  // the drop-tail queue was full
	DropLoss   = "loss"   // random loss
	DropOutage = "outage" // the line was down
	DropCross  = "cross"  // a cross-traffic packet found the queue full
)

// Pipe is one direction of the line: a bottleneck of Rate bytes per second
// with a drop-tail queue, then Delay (plus jitter) to the far end. The queue
// is kept as the time the line is busy until, so a packet's place and
// serialization delay are computed when it is sent; a goroutine of Serve
// hands packets to their deliver function when they arrive.
//
// Pipe uses the time package only (time.Now, timers), so it runs unchanged
// under testing/synctest's virtual clock.
type Pipe struct {
	cfg   PipeConfig
	dir   string
	m     *linkMetrics
	start time.Time
	wake  chan struct{}

	stats PipeStats

	mu          sync.Mutex
	r           *rand.Rand
	busyUntil   time.Time // when the line has serialized everything accepted
	lastDeliver time.Time // in-order floor for jittered packets
	seq         uint64
	inflight    deliveries
}

// PipeStats are a pipe's counters (the same as its metrics), for tests.
type PipeStats struct {
	Delivered    atomic.Int64 // payload bytes delivered
	QueueDrops   atomic.Int64 // datagrams dropped because the queue was full
	Lost         atomic.Int64 // datagrams dropped by random loss
	CrossCarried atomic.Int64 // cross-traffic bytes that took their turn
	CrossDropped atomic.Int64 // cross-traffic bytes dropped (queue full)
}

// Stats returns the pipe's counters.
func (p *Pipe) Stats() *PipeStats { return &p.stats }

// NewPipe returns the pipe for direction dir ("up" or "down"), its clock
// started now (outages count from here). m may be nil (no metrics).
func NewPipe(cfg PipeConfig, dir string, m *linkMetrics) (*Pipe, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = newMetrics()
	}
	now := time.Now()
	return &Pipe{
		cfg: cfg, dir: dir, m: m, start: now, busyUntil: now, lastDeliver: now,
		wake: make(chan struct{}, 1),
		r:    rand.New(rand.NewPCG(cfg.Seed, uint64(len(dir)))),
	}, nil
}

// rateAt returns the line rate at t: the primary rate, the backup rate
// during an outage, or 0 when the line is down.
func (p *Pipe) rateAt(t time.Time) float64 {
	since := t.Sub(p.start)
	for _, o := range p.cfg.Outages {
		if since >= o.Start && since < o.Start+o.Duration {
			return p.cfg.BackupRate
		}
	}
	return p.cfg.Rate
}

// outageEnd returns when the outage covering t ends (t if none does).
func (p *Pipe) outageEnd(t time.Time) time.Time {
	since := t.Sub(p.start)
	for _, o := range p.cfg.Outages {
		if since >= o.Start && since < o.Start+o.Duration {
			return p.start.Add(o.Start + o.Duration)
		}
	}
	return t
}

// backlog returns the bytes waiting to be serialized at now, at rate.
func (p *Pipe) backlog(now time.Time, rate float64) float64 {
	if !p.busyUntil.After(now) || math.IsInf(rate, 1) {
		return 0
	}
	return p.busyUntil.Sub(now).Seconds() * rate
}

// QueueBytes returns the bytes currently queued at the bottleneck.
func (p *Pipe) QueueBytes() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	return p.backlog(now, p.rateAt(now))
}

// Send offers a datagram to the line: it is queued, or dropped when the
// queue is full, the line is down, or by random loss. deliver is called
// with b (maybe twice, with duplication) when it arrives. It reports
// whether b was accepted onto the line.
func (p *Pipe) Send(b []byte, overhead int, deliver func([]byte)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	at, ok := p.occupy(now, len(b)+overhead, DropQueue)
	if !ok {
		return false
	}
	if p.cfg.Loss > 0 && p.r.Float64() < p.cfg.Loss {
		p.m.drops.WithLabelValues(DropLoss).Inc()
		p.stats.Lost.Add(1)
		return true
	}
	p.schedule(at, b, deliver, false)
	if p.cfg.Duplicate > 0 && p.r.Float64() < p.cfg.Duplicate {
		p.schedule(at, b, deliver, false)
	}
	return true
}

// SendWait queues a stream segment, waiting (instead of dropping) until the
// queue has room and the line is up, so a TCP stream is paced by the line
// without loss. A zero-length b is an end-of-stream marker that costs no
// line time and arrives after the segments sent before it.
func (p *Pipe) SendWait(ctx context.Context, b []byte, overhead int, deliver func([]byte)) error {
	wire := len(b) + overhead
	if len(b) == 0 {
		wire = 0
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		now := time.Now()
		wait := p.roomIn(now, wire)
		if wait == 0 {
			at, _ := p.occupy(now, wire, "")
			p.schedule(at, b, deliver, true)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// roomIn returns how long until wire bytes fit in the queue (0 = now).
func (p *Pipe) roomIn(now time.Time, wire int) time.Duration {
	rate := p.rateAt(now)
	if rate == 0 {
		return max(time.Millisecond, p.outageEnd(now).Sub(now))
	}
	// A stream leaves room for two cross-traffic packets: a real sender
	// does not keep the queue exactly full, and the other users' traffic
	// should get its share rather than be dropped at every tick.
	limit := float64(p.cfg.Queue)
	if p.cfg.Cross > 0 {
		limit = max(limit/2, limit-2*float64(p.cfg.CrossPacket))
	}
	over := p.backlog(now, rate) + float64(wire) - limit
	if over <= 0 || wire == 0 {
		return 0
	}
	return max(time.Microsecond, time.Duration(over/rate*float64(time.Second)))
}

// occupy puts wire bytes on the line at now and returns when they finish
// serializing, or false (counted as a drop for reason, when not "") when the
// queue is full or the line is down.
func (p *Pipe) occupy(now time.Time, wire int, reason string) (time.Time, bool) {
	rate := p.rateAt(now)
	if rate == 0 {
		if reason != "" {
			p.m.drops.WithLabelValues(reasonOutage(reason)).Inc()
		}
		return time.Time{}, false
	}
	if p.busyUntil.Before(now) {
		p.busyUntil = now
	}
	if reason != "" && p.backlog(now, rate)+float64(wire) > float64(p.cfg.Queue) {
		p.m.drops.WithLabelValues(reason).Inc()
		if reason == DropQueue {
			p.stats.QueueDrops.Add(1)
		}
		return time.Time{}, false
	}
	if !math.IsInf(rate, 1) {
		p.busyUntil = p.busyUntil.Add(time.Duration(float64(wire) / rate * float64(time.Second)))
	}
	return p.busyUntil, true
}

func reasonOutage(reason string) string {
	if reason == DropCross {
		return DropCross
	}
	return DropOutage
}

// schedule adds b to the packets in flight, to arrive after the delay.
func (p *Pipe) schedule(serialized time.Time, b []byte, deliver func([]byte), reliable bool) {
	at := serialized.Add(p.cfg.Delay)
	if p.cfg.Jitter > 0 {
		at = at.Add(time.Duration(p.r.Int64N(int64(p.cfg.Jitter))))
	}
	if !reliable && p.cfg.Reorder > 0 && p.r.Float64() < p.cfg.Reorder {
		at = at.Add(p.cfg.ReorderDelay) // overtaken; does not hold back the rest
	} else {
		if at.Before(p.lastDeliver) {
			at = p.lastDeliver
		}
		p.lastDeliver = at
	}
	p.seq++
	heap.Push(&p.inflight, delivery{at: at, seq: p.seq, b: b, deliver: deliver, reliable: reliable})
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Serve delivers packets as they arrive and sends the cross traffic, until
// ctx ends.
func (p *Pipe) Serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.deliverLoop(ctx) })
	if p.cfg.Cross > 0 {
		g.Go(func() error { return p.crossLoop(ctx) })
	}
	return g.Wait()
}

func (p *Pipe) deliverLoop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []delivery
	for {
		p.mu.Lock()
		now := time.Now()
		due = due[:0]
		for p.inflight.Len() > 0 && !p.inflight[0].at.After(now) {
			due = append(due, heap.Pop(&p.inflight).(delivery))
		}
		wait := time.Hour
		if p.inflight.Len() > 0 {
			wait = p.inflight[0].at.Sub(now)
		}
		p.mu.Unlock()
		for _, d := range due {
			if !d.reliable && p.rateAt(d.at) == 0 {
				p.m.drops.WithLabelValues(DropOutage).Inc()
				continue
			}
			p.m.bytes.WithLabelValues(p.dir).Add(float64(len(d.b)))
			p.stats.Delivered.Add(int64(len(d.b)))
			if len(d.b) > 0 {
				p.m.packets.WithLabelValues(p.dir).Inc()
			}
			d.deliver(d.b)
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// crossLoop queues cross-traffic packets at CrossPacket/Cross-second
// intervals. Packets are counted from the start, so a late tick (a busy
// machine) queues the ones it missed at once: the offered rate is exactly
// Cross, as a real caller's would be.
func (p *Pipe) crossLoop(ctx context.Context) error {
	every := time.Duration(float64(p.cfg.CrossPacket) / p.cfg.Cross * float64(time.Second))
	every = max(every, time.Microsecond)
	t := time.NewTicker(max(every, time.Millisecond))
	defer t.Stop()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			due := int64(time.Since(start) / every)
			p.mu.Lock()
			for ; sent < due; sent++ {
				if _, ok := p.occupy(time.Now(), p.cfg.CrossPacket, DropCross); ok {
					p.m.cross.WithLabelValues(p.dir).Add(float64(p.cfg.CrossPacket))
					p.stats.CrossCarried.Add(int64(p.cfg.CrossPacket))
				} else {
					p.m.crossDr.WithLabelValues(p.dir).Add(float64(p.cfg.CrossPacket))
					p.stats.CrossDropped.Add(int64(p.cfg.CrossPacket))
				}
			}
			p.mu.Unlock()
		}
	}
}

// delivery is a packet in flight.
type delivery struct {
	at       time.Time
	seq      uint64
	b        []byte
	deliver  func([]byte)
	reliable bool // a stream segment: never dropped after acceptance
}

// deliveries is a min-heap by arrival time, then send order.
type deliveries []delivery

func (h deliveries) Len() int { return len(h) }
func (h deliveries) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h deliveries) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deliveries) Push(x any)   { *h = append(*h, x.(delivery)) }
func (h *deliveries) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = delivery{}
	*h = old[:len(old)-1]
	return d
}
