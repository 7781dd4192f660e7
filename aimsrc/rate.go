package aimsrc

import (
	"sync"
	"time"
)

// rateWindow is the span over which the transfer rate is measured.
const rateWindow = 30 * time.Second

// rateMeter measures the recent ack rate of a volume: bytes of journal files
// acked by the far end per second over the last rateWindow. It keeps one
// bucket per second, so its memory is fixed.
type rateMeter struct {
	mu      sync.Mutex
	buckets [int(rateWindow / time.Second)]int64
	last    int64 // Unix second of the newest bucket written
	first   int64 // Unix second of the first ack (0: none yet)
}

// add counts n bytes acked at now.
func (m *rateMeter) add(now time.Time, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sec := now.Unix()
	if m.first == 0 {
		m.first, m.last = sec, sec
	}
	m.advance(sec)
	m.buckets[sec%int64(len(m.buckets))] += n
}

// advance clears the buckets of the seconds after last up to sec. mu held.
func (m *rateMeter) advance(sec int64) {
	if sec <= m.last {
		return
	}
	for s := m.last + 1; s <= sec && s <= m.last+int64(len(m.buckets)); s++ {
		m.buckets[s%int64(len(m.buckets))] = 0
	}
	m.last = sec
}

// rate returns bytes per second over the window ending at now (over the
// time since the first ack while that is shorter than the window).
func (m *rateMeter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.first == 0 {
		return 0
	}
	sec := now.Unix()
	m.advance(sec)
	var sum int64
	for _, b := range m.buckets {
		sum += b
	}
	span := min(float64(sec-m.first+1), float64(len(m.buckets)))
	return float64(sum) / span
}

// eta returns the seconds needed to send pending bytes at rate: 0 when
// nothing is pending, -1 when something is and the rate is 0 (unknown).
func eta(pending int64, rate float64) float64 {
	switch {
	case pending <= 0:
		return 0
	case rate <= 0:
		return -1
	}
	return float64(pending) / rate
}
