package sizing

import (
	"math"
	"time"
)

// Sample is one point of the curves.
type Sample struct {
	T        float64   `json:"t_s"`       // seconds from the start (end of the step)
	Backlog  []float64 `json:"backlog"`   // Src Data per volume, bytes
	Latency  []float64 `json:"latency_s"` // Time Latency per volume, seconds
	Total    float64   `json:"total"`     // Src Data of all volumes
	Capacity float64   `json:"capacity"`  // line capacity for replication, wire bytes/s
	Sent     float64   `json:"sent"`      // logical bytes/s replicated in the step
	Overflow float64   `json:"overflow"`  // bytes lost to overflow so far
	Cap      float64   `json:"cap_bytes"` // buffer size (0 = unlimited)
}

// VolumeResult sums up one volume.
type VolumeResult struct {
	Name         string  `json:"name"`
	Written      float64 `json:"written"`       // bytes written in the run
	PeakBacklog  float64 `json:"peak_backlog"`  // largest Src Data
	PeakAt       float64 `json:"peak_at_s"`     // when (seconds from start)
	MaxLatency   float64 `json:"max_latency_s"` // largest Time Latency
	MaxLatencyAt float64 `json:"max_latency_at_s"`
	FinalBacklog float64 `json:"final_backlog"`
	FinalLatency float64 `json:"final_latency_s"`
}

// Result is a model run.
type Result struct {
	Volumes       []VolumeResult `json:"volumes"`
	PeakBacklog   float64        `json:"peak_backlog"`     // largest total Src Data: the buffer needed
	PeakAt        float64        `json:"peak_at_s"`        // when
	MaxLatency    float64        `json:"max_latency_s"`    // largest Time Latency of any volume
	Overflow      float64        `json:"overflow"`         // bytes that did not fit the buffer
	FirstOverflow float64        `json:"first_overflow_s"` // when the buffer first overflowed (-1: never)
	CatchUp       float64        `json:"catch_up_s"`       // from the peak until the backlog is empty (-1: not within the run)
	End           float64        `json:"end_s"`            // when the run ended (Duration, or earlier with StopWhenDrained)
	Samples       []Sample       `json:"samples"`
}

// chunk is a stretch of writes not yet replicated: bytes written uniformly
// over [t0, t0+dur).
type chunk struct {
	t0, dur float64 // seconds from the start
	bytes   float64 // written
	left    float64 // not yet replicated
}

type volState struct {
	q       []chunk
	head    int
	backlog float64
}

const epsilon = 1e-6 // bytes: below this a backlog is empty

func (v *volState) push(c chunk) {
	if c.bytes <= 0 {
		return
	}
	v.q = append(v.q, c)
	v.backlog += c.bytes
}

// take replicates up to n bytes, oldest first, and returns how many.
func (v *volState) take(n float64) float64 {
	got := 0.0
	for n-got > 0 && v.head < len(v.q) {
		c := &v.q[v.head]
		k := math.Min(c.left, n-got)
		c.left -= k
		got += k
		if c.left <= epsilon {
			v.head++
		}
	}
	v.backlog = math.Max(0, v.backlog-got)
	if v.head == len(v.q) || v.backlog <= epsilon {
		v.q, v.head, v.backlog = v.q[:0], 0, 0
	} else if v.head > 1024 && v.head*2 > len(v.q) {
		v.q = append(v.q[:0], v.q[v.head:]...)
		v.head = 0
	}
	return got
}

// drop removes n bytes from the newest writes (overflow).
func (v *volState) drop(n float64) {
	for n > epsilon && len(v.q) > v.head {
		c := &v.q[len(v.q)-1]
		k := math.Min(c.left, n)
		c.left -= k
		n -= k
		v.backlog -= k
		if c.left <= epsilon {
			v.q = v.q[:len(v.q)-1]
		}
	}
	if v.backlog <= epsilon || len(v.q) == v.head {
		v.q, v.head, v.backlog = v.q[:0], 0, 0
	}
}

// latency returns the Time Latency at now (seconds from start).
func (v *volState) latency(now float64) float64 {
	if v.backlog <= epsilon || v.head >= len(v.q) {
		return 0
	}
	c := v.q[v.head]
	ts := c.t0 + c.dur*(1-c.left/c.bytes)
	return math.Max(0, now-ts)
}

// Run computes the model.
func Run(m Model) (*Result, error) {
	m = m.withDefaults()
	if err := m.validate(); err != nil {
		return nil, err
	}
	if m.FileSize > 0 {
		return runFiles(m), nil
	}
	steps := int(m.Duration / m.Step)
	dt := m.Step.Seconds()
	every := max(1, steps/(m.Samples-1))
	vs := make([]volState, len(m.Volumes))
	res := &Result{FirstOverflow: -1, CatchUp: -1, Volumes: make([]VolumeResult, len(m.Volumes))}
	for i, v := range m.Volumes {
		res.Volumes[i].Name = v.Name
		vs[i].push(chunk{bytes: v.Initial, left: v.Initial})
		res.Volumes[i].Written = v.Initial
	}
	for s := range steps {
		t := float64(s) * dt
		now := m.Start.Add(time.Duration(s) * m.Step)
		for i := range m.Volumes {
			v := &m.Volumes[i]
			w := v.writeRate(now) * dt
			vs[i].push(chunk{t0: t, dur: dt, bytes: w, left: w})
			res.Volumes[i].Written += w
			for _, b := range v.Bursts {
				if n, at, dur := burstIn(b, t, dt); n > 0 {
					vs[i].push(chunk{t0: at, dur: dur, bytes: n, left: n})
					res.Volumes[i].Written += n
				}
			}
		}
		capacity := m.capacity(now)
		sent := drain(vs, capacity*dt*m.reductionAt(t))
		total := 0.0
		for i := range vs {
			total += vs[i].backlog
		}
		if m.Buffer > 0 && total > m.Buffer {
			excess := total - m.Buffer
			for i := range vs {
				vs[i].drop(excess * vs[i].backlog / total)
			}
			res.Overflow += excess
			if res.FirstOverflow < 0 {
				res.FirstOverflow = t + dt
			}
			total = m.Buffer
		}
		end := t + dt
		backlog, latency := make([]float64, len(vs)), make([]float64, len(vs))
		for i := range vs {
			backlog[i], latency[i] = vs[i].backlog, vs[i].latency(end)
		}
		res.observe(backlog, latency, end, total)
		stop := m.StopWhenDrained && total <= epsilon && end >= m.lastWrite()
		if s%every == 0 || s == steps-1 || stop {
			res.Samples = append(res.Samples, Sample{T: end, Total: total, Capacity: capacity, Sent: sent / dt,
				Overflow: res.Overflow, Cap: m.Buffer, Backlog: backlog, Latency: latency})
		}
		res.finish(backlog, latency, end)
		if stop {
			break
		}
	}
	return res, nil
}

// finish records the figures at the end of a step as the final ones.
func (r *Result) finish(backlog, latency []float64, end float64) {
	r.End = end
	for i := range backlog {
		r.Volumes[i].FinalBacklog, r.Volumes[i].FinalLatency = backlog[i], latency[i]
	}
}

// burstIn returns the bytes of b written in the step [t, t+dt), when the
// first of them is written and over how long.
func burstIn(b Burst, t, dt float64) (n, at, dur float64) {
	from, over := b.At.Seconds(), b.Over.Seconds()
	if over <= 0 {
		if from >= t && from < t+dt {
			return b.Bytes, from, 0
		}
		return 0, 0, 0
	}
	lo, hi := math.Max(t, from), math.Min(t+dt, from+over)
	if hi <= lo {
		return 0, 0, 0
	}
	return b.Bytes * (hi - lo) / over, lo, hi - lo
}

// capacity returns the wire bytes/s left for replication at now.
func (m *Model) capacity(now time.Time) float64 {
	rate := m.Rate
	if m.Schedule != nil {
		rate = math.Min(rate, m.Schedule.RateAt(now))
	}
	return math.Max(0, rate-m.CrossHourly[now.Hour()])
}

// drain shares n logical bytes among the volumes with a backlog, equally,
// handing what a volume does not need to the others. It returns the bytes
// replicated.
func drain(vs []volState, n float64) float64 {
	sent := 0.0
	for n > epsilon {
		active := 0
		for i := range vs {
			if vs[i].backlog > epsilon {
				active++
			}
		}
		if active == 0 {
			break
		}
		share := n / float64(active)
		round := 0.0
		for i := range vs {
			if vs[i].backlog > epsilon {
				round += vs[i].take(share)
			}
		}
		sent += round
		n -= round
		if round <= epsilon {
			break
		}
	}
	return sent
}

// observe updates the peaks after a step ending at end.
func (r *Result) observe(backlog, latency []float64, end, total float64) {
	if total > r.PeakBacklog+epsilon {
		r.PeakBacklog, r.PeakAt, r.CatchUp = total, end, -1
	}
	if total <= epsilon && r.CatchUp < 0 && r.PeakBacklog > epsilon {
		r.CatchUp = end - r.PeakAt
	}
	for i := range backlog {
		vr := &r.Volumes[i]
		if backlog[i] > vr.PeakBacklog {
			vr.PeakBacklog, vr.PeakAt = backlog[i], end
		}
		if l := latency[i]; l > vr.MaxLatency {
			vr.MaxLatency, vr.MaxLatencyAt = l, end
			r.MaxLatency = math.Max(r.MaxLatency, l)
		}
	}
}
