package transport

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// controller wraps the rate model with its lock and the pacer: a token
// bucket filled at the pace (under the schedule's cap) that may go into
// debt. Parts are written with quic-go's WriteWithLimit and the bucket as
// the limiter, so bytes are charged when QUIC packs them into a packet —
// a connection held back by its congestion window takes no tokens, the
// others get them — and a packet is granted whole while the bucket is not
// in debt (a partly filled packet would waste its header). Other writes
// (file headers, small blobs) take their bytes up front and wait out the
// debt.
type controller struct {
	thr *Throttle

	mu     sync.Mutex
	m      *rateModel
	tokens float64   // bytes that may go now; negative: debt
	filled time.Time // when tokens was last brought up to date
	unused float64   // credit the full bucket let go since takeUnused
}

func newController(hint float64, thr *Throttle) *controller {
	c := &controller{thr: thr, m: newRateModel(hint), filled: time.Now()}
	return c
}

// bucketDepth is the most the bucket holds: 20 ms at the pace, at least
// eight datagrams. A writer woken late by a busy host (timers fire a
// millisecond or more late, a loaded host runs a goroutine tens of
// milliseconds late) finds the credit it missed; an idle sender saves up
// no more than a burst the bottleneck's queue absorbs.
func bucketDepth(rate float64) float64 { return max(rate*0.020, 8*packetBytes) }

// partSize is the part size of a new transfer: about 32 ms at the pace,
// within [32 KiB, 256 KiB] — the record header is then a tenth of a
// percent, and a part stuck on a loss-halved connection is not much of a
// file.
func (c *controller) partSize() int {
	c.mu.Lock()
	pace := c.rate()
	c.mu.Unlock()
	return int(min(max(pace*0.032, 32<<10), 256<<10)) &^ 1023
}

// batchBytes is how much a lane writes at once: the records of the parts
// waiting, up to 32 ms at the pace or 64 KiB, whichever is more (at least
// one part).
func (c *controller) batchBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(min(max(c.rate()*0.032, 64<<10), 4<<20))
}

// rate is the pace the bucket fills at: the model's, under the schedule's
// cap (0 while paused) (c.mu held).
func (c *controller) rate() float64 {
	pace := c.m.pacing
	if c.thr != nil {
		if r := c.thr.Rate(); r < pace {
			pace = max(r, 0)
		}
	}
	return pace
}

// fill brings the bucket up to now (c.mu held) and returns the rate.
func (c *controller) fill(now time.Time) float64 {
	r := c.rate()
	if dt := now.Sub(c.filled); dt > 0 {
		t := c.tokens + r*dt.Seconds()
		if depth := bucketDepth(r); t > depth {
			c.unused += t - depth
			t = depth
		}
		c.tokens = t
		c.filled = now
	}
	return r
}

// takeUnused returns the credit the bucket overflowed with since the last
// call (bytes the pace allowed and nobody sent) and the pace.
func (c *controller) takeUnused() (unused, rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.fill(time.Now())
	unused, c.unused = c.unused, 0
	return unused, r
}

// limit is the WriteWithLimit limiter: it grants the whole packet while the
// bucket is not in debt, else nothing.
func (c *controller) limit(maxBytes int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.fill(now)
	if c.tokens < 0 {
		return 0
	}
	c.tokens -= float64(maxBytes)
	c.m.onSent(int64(maxBytes), now)
	return maxBytes
}

// take charges n bytes and waits until the bucket is out of debt.
func (c *controller) take(ctx context.Context, n int) error {
	c.mu.Lock()
	now := time.Now()
	c.fill(now)
	c.tokens -= float64(n)
	c.m.onSent(int64(n), now)
	c.mu.Unlock()
	return c.waitCredit(ctx)
}

// waitCredit waits until the bucket is not in debt (rechecking at least
// every 100 ms, so a schedule change or a pause ending is seen).
func (c *controller) waitCredit(ctx context.Context) error {
	for {
		c.mu.Lock()
		r := c.fill(time.Now())
		debt := -c.tokens
		c.mu.Unlock()
		if debt < 0 {
			return nil
		}
		wait := 100 * time.Millisecond
		if r > 0 {
			wait = min(wait, time.Duration(debt/r*float64(time.Second))+time.Microsecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// limitedWriter is the part of a QUIC stream the pacer writes through.
type limitedWriter interface {
	WriteWithLimit(p []byte, limiter func(maxBytes int) int) (int, error)
}

// writeLimited writes p to st, each packet's bytes granted by the bucket.
func (c *controller) writeLimited(ctx context.Context, st limitedWriter, p []byte) error {
	for len(p) > 0 {
		if err := c.waitCredit(ctx); err != nil {
			return err
		}
		n, err := st.WriteWithLimit(p, c.limit)
		p = p[n:]
		if err != nil && !errors.Is(err, quic.ErrWriteLimitReached) {
			return err
		}
	}
	return nil
}

func (c *controller) onSend(size int64, now time.Time, appLimited bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.onParts(size, now, appLimited)
}

func (c *controller) onDone(s sendSnap) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.onDone(s)
}

func (c *controller) onReport(peerTime time.Time, received int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.onReport(peerTime, received, time.Now())
}

func (c *controller) onRTT(rtt time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.onRTT(rtt, time.Now())
}

// pace is the rate the senders may reach: the lower of the model's pace
// and the schedule's cap.
func (c *controller) pace() float64 {
	c.mu.Lock()
	p := c.m.pacing
	c.mu.Unlock()
	if c.thr != nil {
		p = math.Min(p, c.thr.Rate())
	}
	return p
}

// Estimates is the rate controller's view of the path (exported as
// metrics, see StatsCollector).
type Estimates struct {
	Bottleneck float64       // bytes per second: the largest delivery rate of the last ten sample windows
	Delivery   float64       // bytes per second: the latest delivery-rate sample
	Pacing     float64       // bytes per second: the pace (before the schedule's cap)
	Cap        float64       // bytes per second: the schedule's cap (+Inf = none)
	BaseRTT    time.Duration // smallest QUIC round trip of the last 36 s
	RTT        time.Duration // latest QUIC round trip of the connections sending
	QueueDelay time.Duration // smallest recent round trip minus the base RTT
	State      string        // startup or steady
	Backoffs   int64         // times a standing queue made the sender back off
	Probes     int64         // base-RTT probes
	// BandwidthProbes counts windows the pace was raised above the
	// estimate because the delivery rate followed it (see probeUp).
	BandwidthProbes int64
	Inflight        int64 // part bytes sent and not yet acknowledged
	Conns           int   // live connections
	ConnsWanted     int   // connections the pool keeps up
	Lanes           int   // connections allowed to write parts at once
	Retries         int64 // parts sent again after their stream failed
}

func (c *controller) estimates() Estimates {
	c.mu.Lock()
	m := c.m
	e := Estimates{Bottleneck: m.btlbw, Delivery: m.lastBW, Pacing: m.pacing, BaseRTT: m.rtprop, RTT: m.lastRTT, QueueDelay: m.lastQ,
		State: m.state.String(), Backoffs: m.backoffs, Probes: m.probes, BandwidthProbes: m.probesUp, Inflight: m.inflight, Cap: math.Inf(1)}
	c.mu.Unlock()
	if c.thr != nil {
		e.Cap = c.thr.Rate()
	}
	return e
}

// pacedWriter paces a stream's writes by the controller.
type pacedWriter struct {
	ctx context.Context
	c   *controller
	w   io.Writer
}

// pacedPiece is the most a pacedWriter charges to the bucket at once. A
// write is charged piece by piece: charged whole, a blob of a megabyte (a
// miss answer) put the bucket that much in debt, and every lane waited it
// out — at 100 KB/s ten seconds of an idle link — before the blob went out
// in one unpaced burst.
const pacedPiece = 16 << 10

// pieceSize is the piece for the pace rate: 5 ms of it, at least two
// datagrams, at most pacedPiece. A piece goes to QUIC at once, which sends
// it as fast as its congestion window lets: at make demo's 172 KB/s a
// 16 KiB piece was 95 ms of line on top of the 60 ms queue the controller
// holds, over the line's 100 ms buffer, and the small files of the
// optimized phase (their data, under 64 KiB, goes through here, not the
// lanes) overflowed it several times a minute.
func pieceSize(rate float64) int {
	return int(min(max(rate*0.005, 2*packetBytes), pacedPiece))
}

func (pw *pacedWriter) Write(p []byte) (int, error) {
	written := 0
	piece := pieceSize(pw.c.pace())
	for len(p) > 0 {
		n := min(len(p), piece)
		if err := pw.c.take(pw.ctx, n); err != nil {
			return written, err
		}
		m, err := pw.w.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
