package transport

import (
	"math"
	"time"
)

// The rate controller paces the aggregate of a Pool's connections at the
// rate the path delivers, holding a small queue at the bottleneck. Its two
// measurements come from QUIC itself, not from the order in which parts
// complete, so a lost packet (which holds up a stream until it is resent)
// does not disturb them:
//
//   - the delivery rate D: the receiver answers each part record with the
//     bytes its QUIC connections from this sender have received so far and
//     the time on its own clock; the bytes received in a window of its
//     clock, over the window, is what the path delivered;
//   - the queue delay q: the smallest round trip QUIC measured on the
//     connections that are sending, sampled every 10 ms, over the last
//     half base RTT, minus the base RTT.
//
// The bottleneck rate B is the largest D of the last ten windows (a host
// or link that stalls for a moment lowers D, not B), and the pace is
//
//	pace = B × (1 + gain × (target − q) / target),  gain 0.1, the factor within [0.8, 1.1]
//
// With the queue at its target the sender paces at what the path delivers,
// so the queue stays; below it the pace grows and the queue with it; above
// it the pace falls below B and the queue drains (proportional control: an
// error in D moves the queue a little off its target, not the pace off the
// path). And when the queue stays above one and a half times its target
// for a whole window while the path delivers less than the sender sends
// (the excess is what queues), the path gives less than B (cross traffic
// grew, the line slowed): B drops to the D measured with the queue full,
// which is what the path gives, and the sender paces at 85% of it for a
// window — a backoff. RTT inflation, not loss, is what makes the sender
// back off; and only inflation with an excess: a busy host that answers
// late inflates round trips while the path takes all that is sent.
//
// The proportional law moves the pace 10 % a window at most: slow to undo
// an estimate that fell while the sender, not the path, was the limit. So
// once a window, when the pacer was the limit, D followed what was sent
// and no queue stood over the whole window, a bandwidth probe raises the
// pace to 1.25 × max(pace, D) for a window, and to 2 × while D keeps
// following (BBR's start-up, roughly): a path at its limit delivers at most
// 1/gain of the probe's pace, which ends it, and so does a queue reaching
// the target.
// The target is small (20 ms, a quarter of the base RTT or eight datagrams
// at D, whichever is largest, at most 60 ms): enough to keep the
// bottleneck busy while a loaded host runs the sender late, little enough
// that other users' traffic is not dropped (the link simulator's VoIP
// keeps its rate). Random loss plays no part: QUIC resends a lost packet,
// and with enough connections a loss-halved congestion window does not
// limit the pace.
//
// The queue the controller holds hides the path's own RTT: every 30
// seconds (the first time 5 s after the start) the pace drops to half of
// B until the round trips of the packets sent since stop falling (the
// queue has drained; the line stays busy while it drains; judged on each
// round-trip sample, not only on reports, which a slow line sends far
// apart; a sample is of a packet sent a round trip earlier), and the
// smallest round trip of the last 36 s is the base RTT. The queue then
// refills at the proportional law's pace, without a bandwidth probe (the
// window's short round trips are the probe's, not room on the path).
//
// Before the first queue is seen (start-up, no hint) the pace doubles per
// window. The pace only grows while the pacer was the limit (the lanes
// sent at the pace); when the data or the connections were, D says nothing
// about the path and the pace is held.
//
// All methods take the time as an argument, so the model is tested
// deterministically; the caller holds its lock.

// ctlState is the controller's phase.
type ctlState int

const (
	stateStartup ctlState = iota // doubling per window until a queue appears
	stateSteady                  // following the delivery rate around the queue target
)

func (s ctlState) String() string {
	if s == stateStartup {
		return "startup"
	}
	return "steady"
}

const (
	startupGrowth = 2.0
	// upGainFirst and upGainMax are the bandwidth probe's gains (see
	// probeUp): the first window after the pace settled, then every window
	// the delivery rate kept following the pace.
	upGainFirst = 1.25
	upGainMax   = 2.0
	// excessFraction: the path delivered less than this share of what the
	// sender sent over a window: it is the limit (a queue grows).
	excessFraction = 0.9
	queueGain      = 0.1
	backoffGain    = 0.85
	maxBackoff     = 0.5
	// bwSlots is the number of windows the bottleneck estimate is the
	// largest D of.
	bwSlots = 10
	// rttSamples is the least number of round-trip samples the queue delay
	// is judged on (their smallest), over at least half a base RTT: a busy
	// host only ever adds delay to a sample, so the smallest is the queue.
	rttSamples = 4
	// RTTEvery is how often the pool samples QUIC's round trips.
	RTTEvery = 10 * time.Millisecond
	// pacedFraction: the lanes sent at least this much of the pace over a
	// window, so the pace (not the data or the connections) was the limit.
	pacedFraction = 0.9
	// minPacing is the floor of the pace: a line slower than this is
	// still used, only not paced finer.
	minPacing = 8e3
	maxPacing = 10e9
	// initialPacing is the pace before any sample when no hint is given.
	initialPacing = 128e3
	// Bounds of the sample window.
	minSampleWindow = 250 * time.Millisecond
	maxSampleWindow = 2 * time.Second
	// The base RTT is the smallest round trip of rtpropBuckets buckets of
	// rtpropBucket each (36 s); the queue the controller holds would hide
	// it, so every probeEvery the pace drops to half until the queue has
	// drained (a probe), which shows the path's RTT without a queue.
	rtpropBucket  = 6 * time.Second
	rtpropBuckets = 6
	probeEvery    = 30 * time.Second
	probeGain     = 0.5
	// hintGain is where the pace starts below a configured link rate: the
	// rate counts the line's bytes, headers included (about 4% of a full
	// datagram), and the first round trips should see the line without a
	// queue. firstProbe is when the first probe comes after that start, in
	// case the hint was too high and those round trips saw a queue after
	// all.
	hintGain   = 0.95
	firstProbe = 5 * time.Second
	// refillTime bounds how long after a base-RTT probe the bandwidth
	// probe waits for the queue to refill (a path that grew meanwhile
	// never fills it at the proportional law's pace).
	refillTime = 5 * time.Second
	// peakFloor is how far below the best delivery rate measured (at most
	// the hint) the bottleneck estimate may fall: backoffs on a standing
	// queue take it at most down to peakFloor × that peak. On a host that
	// runs the sender and the receiver late (two cores shared by src, dst,
	// both proxies and the link simulator), round trips inflate with no
	// queue on the line; without a floor the estimate halved per backoff
	// and grew back only while the sender was paced, and make demo's
	// 2 Mbit/s line ran at 30 KB/s. A path that loses more than half of
	// what it once delivered for long is followed only down to that half:
	// the price of the floor.
	peakFloor = 0.5
	// packetBytes sizes the queue target on slow lines (a full datagram).
	packetBytes = 1500
	// minQueueTarget is the smallest queue target: above the noise of the
	// round trips a busy host measures.
	minQueueTarget = 20 * time.Millisecond
)

// sendSnap is what the controller keeps of a part until it is
// acknowledged or lost.
type sendSnap struct {
	size int64
}

// event is a point of a running total: sent bytes at the sender's time,
// or bytes a connection received at the receiver's time.
type event struct {
	t     time.Time
	total int64
}

// rttEvent is one round-trip sample.
type rttEvent struct {
	t   time.Time
	rtt time.Duration
}

// bwSlot is the largest D of one window.
type bwSlot struct {
	slot int64 // time / window
	bw   float64
}

// rateModel is the state of the controller (see the comment at the top).
type rateModel struct {
	sent         int64
	inflight     int64
	sends        []event    // the sender's running total of bytes sent
	rtts         []rttEvent // round-trip samples, newest last
	recv         []event    // the receiver's total of bytes received, its clock, in stream bytes
	recvQUIC     int64      // the receiver's latest total in QUIC bytes
	share        float64    // stream bytes / QUIC bytes sent, 0 = unknown
	appLimitedAt time.Time  // last time a part left with nothing behind it

	rtBuckets [rtpropBuckets]time.Duration // smallest round trip per bucket
	rtBucket  int64                        // index of the current bucket (time / rtpropBucket)
	rtprop    time.Duration                // the base RTT

	state       ctlState
	pacing      float64 // bytes per second
	btlbw       float64 // the bottleneck estimate: D while the bottleneck was busy
	lastBW      float64 // the latest D
	lastRTT     time.Duration
	lastQ       time.Duration // the latest q
	nextGrowth  time.Time     // start-up doubles at most once per window
	upPace      float64       // the pace of the bandwidth probe under way (0: none)
	upUntil     time.Time     // when the window of that probe ends
	upGain      float64       // its gain
	upStreak    int           // probes in a row that the delivery rate followed
	probesUp    int64         // bandwidth probes
	backoffs    int64         // times a standing queue made the sender back off
	highSince   time.Time     // since when the queue is above twice its target
	holdUntil   time.Time     // a backoff paces below D until then
	peak        float64       // the best D sampled (at most the hint): the estimate stays above peakFloor × it
	hint        float64       // the configured link rate (0: none)
	probeAt     time.Time     // when the current probe began (zero: none)
	probeMin    time.Duration // the smallest round trip of the probe so far
	probeMinAt  time.Time     // when it was seen
	probeLimit  time.Duration // the longest the probe may last
	probeQueued bool          // a queue of half the target or more stood when it began
	refilling   bool          // a probe that drained a queue ended, and the queue has not refilled to half its target since
	probes      int64
	lastProbe   time.Time
	bw          [bwSlots]bwSlot
	trace       func(format string, a ...any)
}

// newRateModel returns a model pacing at the hint (a configured link rate,
// trusted until samples say otherwise), or at initialPacing in start-up
// without one. The hint is not put in the max filter: the line may be
// shared, and the first delivery rate measured while paced replaces it.
func newRateModel(hint float64) *rateModel {
	m := &rateModel{state: stateStartup, pacing: initialPacing, hint: hint}
	if hint > 0 {
		m.pacing = math.Min(hint*hintGain, maxPacing)
		m.btlbw = m.pacing
		m.state = stateSteady
	}
	return m
}

// window is the span over which D is judged: two base RTTs, within
// [250ms, 2s], and at least four reports at the current rate of them.
func (m *rateModel) window() time.Duration {
	w := 2 * m.rtprop
	if n := len(m.recv); n > 4 {
		if span := m.recv[n-1].t.Sub(m.recv[0].t); span > 0 {
			w = max(w, 4*span/time.Duration(n-1))
		}
	}
	return min(max(w, minSampleWindow), maxSampleWindow)
}

// target is the queue delay the controller holds: 20 ms, a quarter of the
// base RTT, or eight datagrams at the delivery rate d, whichever is
// largest, and at most 60 ms. The queue is what keeps the line busy while
// the sender is held up — a busy host runs it late by tens of
// milliseconds at times — and stays well below a line's usual buffer (the
// link simulator's is 100 ms), so other users' packets are not dropped.
func (m *rateModel) target(d float64) time.Duration {
	t := max(m.rtprop/4, minQueueTarget)
	if d > 0 {
		t = max(t, time.Duration(8*packetBytes/d*float64(time.Second)))
	}
	return min(t, 60*time.Millisecond)
}

// onParts records parts of size bytes handed to QUIC at now. appLimited
// says the sender had nothing else waiting.
func (m *rateModel) onParts(size int64, now time.Time, appLimited bool) {
	m.inflight += size
	if appLimited {
		m.appLimitedAt = now
	}
}

// onSent records n bytes the pacer let go at now.
func (m *rateModel) onSent(n int64, now time.Time) {
	m.sent += n
	if k := len(m.sends); k > 0 && now.Sub(m.sends[k-1].t) < time.Millisecond {
		m.sends[k-1].total = m.sent // one event per millisecond is enough
		return
	}
	m.sends = trim(append(m.sends, event{t: now, total: m.sent}), now)
}

// onDone forgets a part that was acknowledged or will not be.
func (m *rateModel) onDone(s sendSnap) { m.inflight = max(m.inflight-s.size, 0) }

// onReport takes a receiver's report arriving at now: the bytes its
// connections from this sender received by peerTime (the receiver's
// clock).
func (m *rateModel) onReport(peerTime time.Time, received int64, now time.Time) {
	if n := len(m.recv); n > 0 {
		switch {
		case received < m.recvQUIC || peerTime.Before(m.recv[n-1].t.Add(-maxSampleWindow)):
			// The receiver restarted (a new clock), or a connection closed
			// and its bytes left the sum: start the series again.
			m.recv = m.recv[:0]
		case !peerTime.After(m.recv[n-1].t):
			return // overtaken by a later report (another stream was faster)
		}
	}
	// QUIC's bytes carry headers, ACKs and resent data besides the stream
	// bytes the pace counts: scale by the share of stream bytes in what
	// the sender's connections sent.
	total := int64(0)
	if n := len(m.recv); n > 0 {
		total = m.recv[n-1].total + int64(float64(received-m.recvQUIC)*m.payloadShare())
	}
	m.recvQUIC = received
	m.recv = trim(append(m.recv, event{t: peerTime, total: total}), peerTime)
	m.control(now)
}

// onRTT takes a round-trip sample QUIC measured (the smallest of the
// connections that sent since the last sample).
func (m *rateModel) onRTT(rtt time.Duration, now time.Time) {
	if rtt <= 0 {
		return
	}
	m.lastRTT = rtt
	m.rttSample(rtt, now)
	m.rtts = append(m.rtts, rttEvent{t: now, rtt: rtt})
	if len(m.rtts) > 512 {
		m.rtts = append(m.rtts[:0], m.rtts[len(m.rtts)-256:]...)
	}
	if !m.probeAt.IsZero() {
		// A base-RTT probe ends as soon as the round trips stop falling,
		// not at the next report: on a slow line a part is reported every
		// 136 ms at the pace (2 Mbit/s, 32 KiB) and twice that at the
		// probe's half pace, and the line idled meanwhile.
		m.probe(now, m.target(m.lastBW), rtt)
	}
}

// control sets the pace from D and q.
func (m *rateModel) control(now time.Time) {
	w := m.window()
	var d float64
	ok := len(m.recv) > 0
	if ok {
		d, ok = rateOf(m.recv, m.recv[len(m.recv)-1].t, w)
	}
	if !ok || d <= 0 {
		return
	}
	m.lastBW = d
	q := max(m.recentMinRTT(now)-m.rtprop, 0)
	m.lastQ = q
	target := m.target(d)
	sent, _ := rateOf(m.sends, now, w)
	paced := sent >= pacedFraction*m.pacing && now.Sub(m.appLimitedAt) >= w
	if m.trace != nil {
		m.trace("D=%.0f share=%.3f max=%.0f q=%v target=%v pace=%.0f sent=%.0f paced=%v w=%v", d, m.payloadShare(), m.btlbw,
			q.Round(time.Millisecond), target.Round(time.Millisecond), m.pacing, sent, paced, w.Round(time.Millisecond))
	}
	if m.probe(now, target, m.lastRTT) {
		return
	}
	// The bottleneck estimate: the largest D of the last bwSlots windows.
	// While the sender sent below its pace (too little data, too few
	// connections) D says only that the path carries at least that much.
	// The receiver cannot have taken more than was sent: a D above what
	// the sender sent lately is a receiver that ran late and caught up in
	// a burst, not the path.
	sent2, _ := rateOf(m.sends, now, 2*w)
	d = min(d, 1.05*max(sent, sent2))
	// The bottleneck estimate: the largest D of the last bwSlots windows.
	// D counts when the sender sent at its pace or a queue stood (the path
	// was the limit); while the sender had too little to send, D says
	// only that the path carries at least that much.
	// A queue counts only while the path delivered less than the sender
	// sent (the sender's excess is what queues): a busy host that answers
	// late inflates round trips while the path takes all that is sent.
	excess := d < excessFraction*sent
	if paced || (q >= target/2 && excess) || d >= m.btlbw {
		m.bwSample(d, now, w)
	}
	if m.standing(now, w, q, target) && d < 0.9*m.btlbw && excess {
		// A queue stood a whole window well above its target and the path
		// delivered clearly less than the estimate: the path gives less
		// (cross traffic grew, the line slowed). What it delivered
		// meanwhile, with the queue full, is what it gives. One backoff
		// halves the estimate at most (a long stall of a busy host looks
		// the same for a while).
		m.backoffs++
		m.resetBW(max(d, m.btlbw*maxBackoff), now, w)
		m.pacing = m.clamp(m.btlbw * backoffGain)
		m.holdUntil = now.Add(w)
		m.state = stateSteady
		m.upPace, m.upStreak = 0, 0
		return
	}
	if now.Before(m.holdUntil) {
		return
	}
	if m.state == stateStartup {
		if q < target/2 {
			if paced && !now.Before(m.nextGrowth) {
				m.pacing = m.clamp(max(m.pacing, d) * startupGrowth)
				m.nextGrowth = now.Add(w)
			}
			return
		}
		m.state = stateSteady
	}
	// The pace is B, more while the queue is short of its target, less
	// while it is over it. Raised only when the pace was the limit
	// (otherwise the path's room is unknown).
	err := max(min(float64(target-q)/float64(target), 1), -2)
	next := m.clamp(max(m.btlbw, d) * (1 + queueGain*err))
	if up := m.probeUp(now, w, d, sent, paced, q, target); up > next {
		m.pacing = up
		return
	}
	if !paced && next > m.pacing {
		return
	}
	m.pacing = next
}

// probeUp runs the bandwidth probe and returns its pace (0: none). The
// proportional law above moves the pace ≈ 10 % a window at most, which is
// slow to undo an estimate that fell while the sender, not the path, was
// the limit (connections still opening, a busy host's late round trips
// read as a queue): at 2.7 MB/s after such a backoff, 40 MB/s is 28
// windows away, and as many as the host's delays hold the growth. So,
// once a window, when the pacer was the limit, the delivery rate followed
// what was sent, and no queue stood over the whole window (the smallest
// round trip of the window: a busy host's delays come and go, a queue
// stays), the pace is raised to gain × max(pace, D) for a window: 1.25 the
// first time, 2 while the delivery keeps following (BBR's start-up gain,
// roughly). A path at its limit does not follow (it delivers at most
// 1/gain of the probe's pace), and the probe ends; so does a queue
// reaching the target within the window. What the probe shows the path
// carries, the bottleneck estimate keeps.
func (m *rateModel) probeUp(now time.Time, w time.Duration, d, sent float64, paced bool, q, target time.Duration) float64 {
	if m.refilling {
		// After a base-RTT probe the queue refills at the proportional
		// law's pace: the window's short round trips are the probe's, not
		// room on the path. Refilled when half the target stood a whole
		// window (one late round trip is not a queue).
		qw := max(m.minRTTSince(now.Add(-w))-m.rtprop, 0)
		if qw < target/2 && now.Sub(m.lastProbe) < refillTime {
			return 0
		}
		m.refilling = false
		m.nextGrowth = now.Add(w)
		return 0
	}
	if m.upPace > 0 && now.Before(m.upUntil) {
		if q >= target {
			m.upPace, m.upStreak = 0, 0 // a queue: the path is full
			return 0
		}
		return m.upPace
	}
	if now.Before(m.nextGrowth) {
		return 0
	}
	m.nextGrowth = now.Add(w)
	// Whether the last window's delivery followed its pace: a path at its
	// limit delivers 1/gain of a probe's pace; what was sent in the last
	// part of the window is still on its way (a round trip's lag).
	g := max(m.upGain, 1)
	if m.upPace == 0 {
		g = 1
	}
	followed := d >= sent*min(excessFraction, (1+g)/(2*g))
	qw := max(m.minRTTSince(now.Add(-w))-m.rtprop, 0)
	if !paced || !followed || qw >= target/2 || q >= target {
		m.upPace, m.upStreak = 0, 0
		return 0
	}
	m.upGain = upGainFirst
	if m.upStreak > 0 {
		m.upGain = upGainMax
	}
	m.upStreak++
	up := max(m.pacing, d) * m.upGain
	if m.hint > 0 {
		up = min(up, max(m.hint, m.pacing)) // a configured link rate bounds the probe
	}
	m.upPace, m.upUntil = m.clamp(up), now.Add(w)
	m.probesUp++
	return m.upPace
}

// minRTTSince is the smallest round trip sampled since t (0: none).
func (m *rateModel) minRTTSince(t time.Time) time.Duration {
	var r time.Duration
	for i := len(m.rtts) - 1; i >= 0 && !m.rtts[i].t.Before(t); i-- {
		if r == 0 || m.rtts[i].rtt < r {
			r = m.rtts[i].rtt
		}
	}
	return r
}

// probe runs the base-RTT probe: every probeEvery the pace drops to half
// the bottleneck estimate until the round trips stop falling (the queue
// the controller holds has drained), at most a second (three round trips
// on a long line); the smallest round trip seen is the base RTT. A round
// trip measured now is that of a packet sent a round trip ago: only those
// sent after the probe began tell of its drain (the ones before waited
// behind the whole queue and do not fall for a round trip; a probe judged
// on them ended before the queue drained and took base RTT + queue for
// the base RTT). It reports whether a probe is on.
func (m *rateModel) probe(now time.Time, target, latest time.Duration) bool {
	if m.probeAt.IsZero() {
		// A probe starts probeEvery after the last one; the first comes
		// firstProbe after the first samples.
		if m.lastProbe.IsZero() {
			m.lastProbe = now.Add(firstProbe - probeEvery)
		}
		if m.state == stateStartup || now.Sub(m.lastProbe) < probeEvery {
			return false
		}
		m.probeAt, m.probeMin, m.probeMinAt, m.probeLimit = now, 0, time.Time{}, max(time.Second, 3*latest)
		// Whether the controller held a queue (half its target stood a
		// whole window; a busy host's late round trips come and go).
		m.probeQueued = m.minRTTSince(now.Add(-m.window()))-m.rtprop >= target/2
		m.pacing = m.clamp(m.btlbw * probeGain)
		m.probes++
		return true
	}
	if latest > 0 && !now.Add(-latest).Before(m.probeAt) && (m.probeMin == 0 || latest < m.probeMin-time.Millisecond) {
		m.probeMin, m.probeMinAt = latest, now
	}
	// Done when the smallest round trip of the packets sent during the
	// probe has not fallen for a base RTT (the queue is gone), or at the
	// probe's limit.
	settled := m.probeMin > 0 && now.Sub(m.probeMinAt) >= max(m.rtprop, 20*time.Millisecond)
	if !settled && now.Sub(m.probeAt) < m.probeLimit {
		return true
	}
	m.probeAt, m.lastProbe = time.Time{}, now
	m.pacing = m.clamp(m.btlbw)
	m.refilling = m.probeQueued
	return false
}

// standing reports whether the queue has been above one and a half times
// its target for a whole window (a transient stall of the host does not
// count; a line's buffer is often not much more).
func (m *rateModel) standing(now time.Time, w time.Duration, q, target time.Duration) bool {
	if q <= target*3/2 {
		m.highSince = time.Time{}
		return false
	}
	if m.highSince.IsZero() {
		m.highSince = now
	}
	return now.Sub(m.highSince) >= w && !now.Before(m.holdUntil)
}

// bwSample puts D into the current window's slot of the max filter. A
// slot keeps the smallest D seen in it: a burst of reports after a stall
// of the receiver (its host ran late and caught up at once) makes one D
// look large for a moment; what holds a whole window counts.
func (m *rateModel) bwSample(d float64, now time.Time, w time.Duration) {
	slot := now.UnixNano() / int64(w)
	if m.bw[0].slot != slot {
		copy(m.bw[1:], m.bw[:len(m.bw)-1])
		m.bw[0] = bwSlot{slot: slot, bw: d}
	}
	m.bw[0].bw = min(m.bw[0].bw, d)
	m.peak = max(m.peak, d)
	if m.hint > 0 {
		m.peak = min(m.peak, m.hint)
	}
	m.btlbw = m.peak * peakFloor
	for _, b := range m.bw {
		m.btlbw = max(m.btlbw, b.bw)
	}
}

// resetBW empties the max filter but for d.
func (m *rateModel) resetBW(d float64, now time.Time, w time.Duration) {
	m.bw = [bwSlots]bwSlot{{slot: now.UnixNano() / int64(w), bw: d}}
	m.btlbw = max(d, m.peak*peakFloor)
}

// recentMinRTT is the smallest of the last rttSamples round trips, or of
// those of the last half base RTT if more.
func (m *rateModel) recentMinRTT(now time.Time) time.Duration {
	var r time.Duration
	for i := len(m.rtts) - 1; i >= 0; i-- {
		s := m.rtts[i]
		if len(m.rtts)-i > rttSamples && now.Sub(s.t) > m.rtprop/2 {
			break
		}
		if r == 0 || s.rtt < r {
			r = s.rtt
		}
	}
	return r
}

// rttSample keeps the smallest round trip per bucket; the base RTT is the
// smallest of the buckets.
func (m *rateModel) rttSample(rtt time.Duration, now time.Time) {
	b := now.UnixNano() / int64(rtpropBucket)
	if b != m.rtBucket {
		for i := m.rtBucket + 1; i <= b && i <= m.rtBucket+rtpropBuckets; i++ {
			m.rtBuckets[i%rtpropBuckets] = 0
		}
		m.rtBucket = b
	}
	slot := &m.rtBuckets[b%rtpropBuckets]
	if *slot == 0 || rtt < *slot {
		*slot = rtt
	}
	m.rtprop = 0
	for _, r := range m.rtBuckets {
		if r > 0 && (m.rtprop == 0 || r < m.rtprop) {
			m.rtprop = r
		}
	}
}

// setShare sets the share of stream bytes in the QUIC bytes the sender's
// connections sent (measured by the pool).
func (m *rateModel) setShare(share float64) {
	if share > 0.5 && share <= 1 {
		m.share = share
	}
}

func (m *rateModel) payloadShare() float64 {
	if m.share == 0 {
		return 0.96 // QUIC's usual overhead on full packets, until measured
	}
	return m.share
}

func (m *rateModel) clamp(p float64) float64 { return min(max(p, minPacing), maxPacing) }

// trim drops events older than the longest window, keeping one before it
// as a window's base.
func trim(evs []event, now time.Time) []event {
	i := 0
	for i+1 < len(evs) && now.Sub(evs[i+1].t) > maxSampleWindow {
		i++
	}
	if i > 0 {
		evs = append(evs[:0], evs[i:]...)
	}
	return evs
}

// rateOf returns the rate of evs over the last w before now; ok is false
// while the events span less than half the window.
func rateOf(evs []event, now time.Time, w time.Duration) (float64, bool) {
	if len(evs) == 0 {
		return 0, false
	}
	base := 0
	for i := len(evs) - 1; i >= 0; i-- {
		if now.Sub(evs[i].t) >= w {
			base = i
			break
		}
	}
	span := now.Sub(evs[base].t)
	if span < w/2 {
		return 0, false
	}
	return float64(evs[len(evs)-1].total-evs[base].total) / span.Seconds(), true
}
