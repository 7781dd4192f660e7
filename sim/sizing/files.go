package sizing

import (
	"math"
	"slices"
	"time"
)

// The file-granular model (Model.FileSize > 0) follows the chain's
// mechanics instead of a fluid:
//
//   - writes fill the volume's open journal file; it is sealed at FileSize
//     payload bytes, or once FileAge old;
//   - the source offers the oldest Window sealed files of each volume at
//     once (files offered in the same step interleave across volumes, as
//     the volumes' pushers run side by side); the source-edge proxy sends
//     the files it holds one after the other, in the order they were
//     offered (one encoder, non-incremental QUIC streams: proxy/send.go),
//     so the line serves the oldest offer first and moves on to the next
//     within the step when it is done;
//   - a file leaves Src Data only when its last byte has crossed the line
//     (the end-to-end ack: nothing partial counts);
//   - a restart (Model.Restarts: the proxies restarted) loses the progress
//     of the files in flight: they start over;
//   - Time Latency is now minus the source time of the oldest write not yet
//     replicated (the first write of the oldest file not yet acked, or of
//     the open file), 0 when nothing waits: the destination destages files in
//     order and the source's heartbeats keep a caught-up, idle volume's
//     watermark current, so this is the live aimwan_time_latency_seconds
//     (within a heartbeat interval).

// halfByte: sizes closer than this are equal (bytes are whole; the model's
// are sums of fractions).
const halfByte = 0.5

// jfile is a sealed journal file not yet acknowledged.
type jfile struct {
	size  float64 // bytes
	sent  float64 // logical bytes sent so far
	first float64 // source time (s) of its oldest write
	last  float64 // source time (s) of its newest write
	offer int     // order in which the source offered it (0: not yet)
	done  bool
}

type fileVol struct {
	open, openAt, openLast float64 // the open file: bytes, when its first and newest bytes were written
	openFirst              float64 // source time of the open file's first write
	q                      []jfile // sealed, in order; done files leave from the head
	backlog                float64 // open + sealed not yet acked
}

// write appends n bytes written at ts (seconds) at step start t, sealing
// full files.
func (v *fileVol) write(n, ts, t, size float64) {
	if n <= 0 {
		return
	}
	v.backlog += n
	for v.open+n >= size-halfByte { // less than a byte short (rounding of spread writes) is full
		fill := math.Min(n, size-v.open)
		first := ts
		if v.open > 0 {
			first = v.openFirst
		}
		v.q = append(v.q, jfile{size: v.open + fill, first: first, last: ts})
		v.open, n = 0, n-fill
	}
	if n > epsilon {
		if v.open == 0 {
			v.openAt, v.openFirst = t, ts
		}
		v.open += n
		v.openLast = ts
	}
}

// seal seals the open file when it is non-empty and at least age old.
func (v *fileVol) seal(now, age float64) {
	if v.open > epsilon && now-v.openAt >= age {
		v.q = append(v.q, jfile{size: v.open, first: v.openFirst, last: v.openLast})
		v.open = 0
	}
}

// inFlight returns how many files are offered and not yet done. Offered
// files are a prefix of the queue (offers go oldest first).
func (v *fileVol) inFlight() int {
	n := 0
	for i := range v.q {
		if v.q[i].offer == 0 {
			break
		}
		if !v.q[i].done {
			n++
		}
	}
	return n
}

// offerNext offers the volume's oldest file not yet offered, if the window
// allows; it returns whether it did.
func (v *fileVol) offerNext(window int, seq *int) bool {
	if v.inFlight() >= window {
		return false
	}
	for i := range v.q {
		if v.q[i].offer == 0 {
			*seq++
			v.q[i].offer = *seq
			return true
		}
	}
	return false
}

// ack removes the replicated files at the head of the queue.
func (v *fileVol) ack() {
	k := 0
	for k < len(v.q) && v.q[k].done {
		v.backlog -= v.q[k].size
		k++
	}
	if k > 0 {
		v.q = slices.Delete(v.q, 0, k)
	}
	if v.backlog < epsilon {
		v.backlog = 0
	}
}

// latency is now minus the source time of the oldest write not yet
// replicated; 0 when nothing waits.
func (v *fileVol) latency(now float64) float64 {
	switch {
	case len(v.q) > 0:
		return math.Max(0, now-v.q[0].first)
	case v.open > epsilon:
		return math.Max(0, now-v.openFirst)
	}
	return 0
}

// offerFiles lets every volume fill its window, one file per volume in
// turn.
func offerFiles(vs []fileVol, window int, seq *int) {
	for more := true; more; {
		more = false
		for i := range vs {
			if vs[i].offerNext(window, seq) {
				more = true
			}
		}
	}
}

// pushFiles sends n logical bytes of the offered files, oldest offer
// first, and returns the bytes sent.
func pushFiles(vs []fileVol, n float64) float64 {
	type ref struct{ v, f, offer int }
	var fl []ref
	for i := range vs {
		for k, f := range vs[i].q {
			if f.offer == 0 { // the offered files are a prefix
				break
			}
			if !f.done {
				fl = append(fl, ref{i, k, f.offer})
			}
		}
	}
	slices.SortFunc(fl, func(a, b ref) int { return a.offer - b.offer })
	sent := 0.0
	for _, r := range fl {
		if n <= epsilon {
			break
		}
		f := &vs[r.v].q[r.f]
		k := math.Min(n, f.size-f.sent)
		f.sent += k
		sent, n = sent+k, n-k
		if f.size-f.sent <= epsilon {
			f.done = true
		}
	}
	return sent
}

func runFiles(m Model) *Result {
	steps := int(m.Duration / m.Step)
	dt := m.Step.Seconds()
	every := max(1, steps/(m.Samples-1))
	vs := make([]fileVol, len(m.Volumes))
	res := &Result{FirstOverflow: -1, CatchUp: -1, Volumes: make([]VolumeResult, len(m.Volumes))}
	for i, v := range m.Volumes {
		res.Volumes[i].Name = v.Name
		vs[i].write(v.Initial, 0, 0, m.FileSize)
		res.Volumes[i].Written = v.Initial
	}
	age, lastWrite := m.FileAge.Seconds(), m.lastWrite()
	seq := 0 // offers so far
	for s := range steps {
		t, end := float64(s)*dt, float64(s+1)*dt
		now := m.Start.Add(time.Duration(s) * m.Step)
		for i := range m.Volumes {
			v := &m.Volumes[i]
			w := v.writeRate(now) * dt
			vs[i].write(w, end, t, m.FileSize)
			res.Volumes[i].Written += w
			for _, b := range v.Bursts {
				if n, at, dur := burstIn(b, t, dt); n > 0 {
					vs[i].write(n, at+dur, t, m.FileSize)
					res.Volumes[i].Written += n
				}
			}
			vs[i].seal(end, age)
		}
		for _, r := range m.Restarts {
			if at := r.Seconds(); at >= t && at < end {
				for i := range vs {
					for k := range vs[i].q {
						vs[i].q[k].sent = 0
					}
				}
			}
		}
		capacity := m.capacity(now)
		offerFiles(vs, m.Window, &seq)
		sent := pushFiles(vs, capacity*dt*m.reductionAt(t))
		backlog, latency := make([]float64, len(vs)), make([]float64, len(vs))
		total := 0.0
		for i := range vs {
			vs[i].ack()
			backlog[i], latency[i] = vs[i].backlog, vs[i].latency(end)
			total += backlog[i]
		}
		res.observe(backlog, latency, end, total)
		stop := m.StopWhenDrained && total <= epsilon && end >= lastWrite
		if s%every == 0 || s == steps-1 || stop {
			res.Samples = append(res.Samples, Sample{T: end, Total: total, Capacity: capacity, Sent: sent / dt,
				Cap: m.Buffer, Backlog: backlog, Latency: latency})
		}
		res.finish(backlog, latency, end)
		if stop {
			break
		}
	}
	return res
}
