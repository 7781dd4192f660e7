package transport

import (
	"context"
	"io"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// bubbleClock maps synctest's fake time onto a chosen wall-clock start, so
// schedules see the weekday and hour the test wants while timers stay fake.
func bubbleClock(start time.Time) func() time.Time {
	t0 := time.Now()
	return func() time.Time { return start.Add(time.Since(t0)) }
}

func TestThrottleBoundaries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := ParseSchedule("tz UTC\nmon 08:00-09:00 2mbit\nmon 09:00-09:30 paused")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var seen []float64
		th := NewThrottle(ThrottleConfig{Schedule: s, Now: bubbleClock(at(0, 7, 59)), OnRate: func(r float64) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
		}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- th.Serve(ctx) }()
		steps := []struct {
			after time.Duration
			want  float64
		}{
			{30 * time.Second, math.Inf(1)},
			{time.Minute, 250e3},
			{time.Hour, 0},
			{30 * time.Minute, math.Inf(1)},
		}
		for _, st := range steps {
			time.Sleep(st.after)
			synctest.Wait()
			if got := th.Rate(); got != st.want {
				t.Fatalf("after +%s: rate %v, want %v", st.after, got, st.want)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if want := []float64{math.Inf(1), 250e3, 0, math.Inf(1)}; !slices.Equal(seen, want) {
			t.Errorf("OnRate saw %v, want %v", seen, want)
		}
	})
}

// countWriter records when bytes arrive.
type countWriter struct {
	t0    time.Time
	total int
	times []time.Duration
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.total += len(p)
	c.times = append(c.times, time.Since(c.t0))
	return len(p), nil
}

func TestThrottleAccuracy(t *testing.T) {
	for _, r := range []string{"2mbit", "1MB/s", "10MB/s"} {
		t.Run(r, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, err := ParseSchedule("* 00:00-24:00 " + r)
				if err != nil {
					t.Fatal(err)
				}
				th := NewThrottle(ThrottleConfig{Schedule: s})
				rate := th.Rate()
				cw := &countWriter{t0: time.Now()}
				w := th.Writer(t.Context(), cw)
				size := int(rate * 3) // three seconds of traffic
				buf := make([]byte, 256<<10)
				for sent := 0; sent < size; {
					n, err := w.Write(buf[:min(len(buf), size-sent)])
					if err != nil {
						t.Fatal(err)
					}
					sent += n
				}
				elapsed := time.Since(cw.t0).Seconds()
				got := float64(cw.total) / elapsed
				if math.Abs(got-rate)/rate > 0.02 {
					t.Errorf("rate %.0f B/s over %.2fs, want %.0f ±2%%", got, elapsed, rate)
				}
				// Smooth: no gap between writes longer than 50ms, and no
				// more than 64 KiB at once after the first bucket.
				for i := 1; i < len(cw.times); i++ {
					if gap := cw.times[i] - cw.times[i-1]; gap > 50*time.Millisecond {
						t.Fatalf("gap of %s between writes", gap)
					}
				}
			})
		})
	}
}

func TestThrottlePausedThenResumed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := ParseSchedule("tz UTC\nmon 00:00-00:10 paused")
		if err != nil {
			t.Fatal(err)
		}
		th := NewThrottle(ThrottleConfig{Schedule: s, Now: bubbleClock(at(0, 0, 5))})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go th.Serve(ctx)
		start := time.Now()
		cw := &countWriter{t0: start}
		if _, err := th.Writer(ctx, cw).Write(make([]byte, 10000)); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 5*time.Minute {
			t.Errorf("write passed after %s while paused until +5m", waited)
		}
		// Cancel while paused returns the context's error.
		th2 := NewThrottle(ThrottleConfig{Schedule: s, Now: bubbleClock(at(0, 0, 0))})
		ctx2, cancel2 := context.WithTimeout(t.Context(), time.Second)
		defer cancel2()
		if _, err := th2.Writer(ctx2, io.Discard).Write([]byte("x")); err == nil {
			t.Error("write while paused ended without error at context end")
		}
	})
}
