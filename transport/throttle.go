package transport

import (
	"context"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/aimwan/aimwan/internal/units"
	"golang.org/x/time/rate"
)

// Throttle is a token bucket on WAN bytes whose rate follows a Schedule. The
// bucket is small (about 20ms of traffic), so a capped sender is smooth, not
// bursty. Run Serve to move to the next cap at each schedule boundary.
type Throttle struct {
	sched  *Schedule
	now    func() time.Time
	onRate func(bytesPerSec float64)
	log    *slog.Logger

	wake chan struct{} // Refresh and SetSchedule nudge Serve

	mu      sync.Mutex
	rate    float64
	lim     *rate.Limiter
	changed chan struct{} // closed and replaced when the rate changes
}

// ThrottleConfig configures a Throttle. The zero value never throttles.
type ThrottleConfig struct {
	// Schedule gives the cap over the week; nil means unlimited.
	Schedule *Schedule
	// Now is the clock; nil means time.Now. Timers use the time package, so
	// tests run under testing/synctest with a Now derived from time.Now.
	Now func() time.Time
	// OnRate, if set, is called with each new cap (+Inf = unlimited, 0 =
	// paused), e.g. to update a gauge.
	OnRate func(bytesPerSec float64)
	// Logger receives a line at each change of cap; nil means slog.Default().
	Logger *slog.Logger
}

// NewThrottle returns a throttle set to the cap in force now.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	t := &Throttle{sched: cfg.Schedule, now: cfg.Now, onRate: cfg.OnRate, log: orDefault(cfg.Logger),
		changed: make(chan struct{}), lim: rate.NewLimiter(rate.Inf, 0), wake: make(chan struct{}, 1)}
	if t.sched == nil {
		t.sched = Unlimited()
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.rate = -1 // force the first set
	t.set(t.sched.RateAt(t.now()), false)
	return t
}

// Rate returns the cap in force, bytes per second (+Inf = unlimited).
func (t *Throttle) Rate() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rate
}

// burstFor is the bucket depth for a rate: 20ms of traffic, within
// [1500 B, 64 KiB].
func burstFor(r float64) int {
	return int(min(max(r*0.02, 1500), 64<<10))
}

func (t *Throttle) set(r float64, logIt bool) {
	t.mu.Lock()
	if r == t.rate {
		t.mu.Unlock()
		return
	}
	old := t.rate
	t.rate = r
	now := t.now()
	switch {
	case math.IsInf(r, 1):
		t.lim.SetLimitAt(now, rate.Inf)
	case r > 0:
		t.lim.SetLimitAt(now, rate.Limit(r))
		t.lim.SetBurstAt(now, burstFor(r))
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	if logIt {
		t.log.Info("WAN schedule: cap changed", "from", units.FormatRate(old), "to", units.FormatRate(r))
	}
	if t.onRate != nil {
		t.onRate(r)
	}
}

// Serve applies the schedule's cap at every boundary until ctx ends. It
// re-reads the schedule at least once a minute, so clock jumps and daylight
// saving changes take effect within a minute.
func (t *Throttle) Serve(ctx context.Context) error {
	for {
		now := t.now()
		sched := t.schedule()
		t.set(sched.RateAt(now), true)
		wait := time.Minute
		if next, ok := sched.NextChange(now); ok {
			wait = min(wait, max(next.Sub(now), time.Millisecond))
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-t.wake:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return nil
		}
	}
}

func (t *Throttle) schedule() *Schedule {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sched
}

// SetSchedule replaces the schedule (e.g. after its file changed); the new
// cap applies at once, without a restart.
func (t *Throttle) SetSchedule(s *Schedule) {
	if s == nil {
		s = Unlimited()
	}
	t.mu.Lock()
	t.sched = s
	t.mu.Unlock()
	t.set(s.RateAt(t.now()), true)
	t.Refresh()
}

// Refresh applies the cap the schedule gives for the clock's time now and
// makes Serve plan its next boundary again (after a clock change; tests with
// an injected clock use it).
func (t *Throttle) Refresh() {
	t.set(t.schedule().RateAt(t.now()), true)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Wait blocks until n bytes may be sent, taking them from the bucket in
// pieces no larger than the bucket. It returns early only with ctx's error.
func (t *Throttle) Wait(ctx context.Context, n int) error {
	for n > 0 {
		took, err := t.take(ctx, n)
		if err != nil {
			return err
		}
		n -= took
	}
	return nil
}

// take waits for up to n tokens and reports how many it took.
func (t *Throttle) take(ctx context.Context, n int) (int, error) {
	t.mu.Lock()
	r, ch := t.rate, t.changed
	if math.IsInf(r, 1) {
		t.mu.Unlock()
		return n, nil
	}
	if r <= 0 { // paused: wait for a change
		t.mu.Unlock()
		select {
		case <-ch:
			return 0, nil
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
	piece := min(n, t.lim.Burst())
	now := t.now()
	res := t.lim.ReserveN(now, piece)
	t.mu.Unlock()
	d := res.DelayFrom(now)
	if d <= 0 {
		return piece, nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return piece, nil
	case <-ch: // the cap changed: give the tokens back and ask again
		res.CancelAt(t.now())
		return 0, nil
	case <-ctx.Done():
		res.CancelAt(t.now())
		return 0, context.Cause(ctx)
	}
}

// pieceSize is how much to write at once: one bucket while capped, so the
// bytes leave evenly spaced.
func (t *Throttle) pieceSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if math.IsInf(t.rate, 1) {
		return 1 << 20
	}
	return max(t.lim.Burst(), 1500)
}

// Writer returns w throttled by t; writes block while the cap is exhausted or
// paused, and fail with ctx's error when ctx ends.
func (t *Throttle) Writer(ctx context.Context, w io.Writer) io.Writer {
	return &throttledWriter{ctx: ctx, t: t, w: w}
}

type throttledWriter struct {
	ctx context.Context
	t   *Throttle
	w   io.Writer
}

func (tw *throttledWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		piece := min(len(p)-done, tw.t.pieceSize())
		if err := tw.t.Wait(tw.ctx, piece); err != nil {
			return done, err
		}
		n, err := tw.w.Write(p[done : done+piece])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
