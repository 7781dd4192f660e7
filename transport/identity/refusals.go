package identity

import (
	"maps"
	"sync"
	"time"
)

// Labels of Refusals.Counts besides fingerprints.
const (
	// NoFingerprint counts refused peers that presented no certificate: not
	// TLS at all, no client certificate, a handshake that never finished.
	NoFingerprint = "none"
	// OtherFingerprints counts refusals of fingerprints beyond MaxTracked.
	OtherFingerprints = "other"
)

// MaxTracked is how many distinct fingerprints Refusals names; refusals of
// any further ones are counted under OtherFingerprints.
const MaxTracked = 32

// Log pacing of refusals: a burst of refusalBurst lines, then one per
// refusalEvery; the lines not written are counted in the next one.
const (
	refusalBurst = 10
	refusalEvery = time.Second
)

// Refusals counts refused peers by fingerprint, for a metric, and paces
// their log lines. It names at most MaxTracked fingerprints (the first seen
// are kept): a peer that makes a new key for every attempt can neither grow
// it nor the metric's label set, nor flood the log. Safe for concurrent use;
// a nil *Refusals counts nothing and logs every refusal.
type Refusals struct {
	mu         sync.Mutex
	counts     map[string]uint64
	tokens     float64 // log lines that may be written now
	last       time.Time
	suppressed uint64 // refusals not logged since the last line
	now        func() time.Time
}

// NewRefusals returns an empty counter.
func NewRefusals() *Refusals {
	return &Refusals{counts: map[string]uint64{}, tokens: refusalBurst, now: time.Now}
}

// record counts one refusal of fp ("" = no fingerprint) and reports whether
// it is to be logged, with how many refusals were not logged before it.
func (r *Refusals) record(fp string) (suppressed uint64, log bool) {
	if r == nil {
		return 0, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := fp
	switch _, known := r.counts[fp]; {
	case fp == "":
		key = NoFingerprint
	case !known && r.tracked() >= MaxTracked:
		key = OtherFingerprints
	}
	r.counts[key]++
	now := r.now()
	if !r.last.IsZero() {
		r.tokens = min(refusalBurst, r.tokens+float64(now.Sub(r.last))/float64(refusalEvery))
	}
	r.last = now
	if r.tokens < 1 {
		r.suppressed++
		return 0, false
	}
	r.tokens--
	suppressed, r.suppressed = r.suppressed, 0
	return suppressed, true
}

// tracked counts the fingerprints named (not the two fixed labels).
func (r *Refusals) tracked() int {
	n := len(r.counts)
	for _, k := range []string{NoFingerprint, OtherFingerprints} {
		if _, ok := r.counts[k]; ok {
			n--
		}
	}
	return n
}

// Count records a refusal that no pin check saw: a peer that presented no
// certificate (fp ""), or one refused elsewhere. It reports whether to log
// it, as the pin check does.
func (r *Refusals) Count(fp string) (suppressed uint64, log bool) { return r.record(fp) }

// Counts returns the refusals so far by fingerprint (as Fingerprint.String
// prints it), NoFingerprint or OtherFingerprints.
func (r *Refusals) Counts() map[string]uint64 {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.counts)
}
