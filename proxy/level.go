package proxy

import (
	"math"

	"github.com/aimwan/aimwan/dedupe"
)

// chooseLevel is the adaptive compression rule. CPU is spent where the link is
// the bottleneck:
//
//   - queueSeconds ≥ max(2, 2·maxSeconds), where maxSeconds is the expected
//     time to encode this file at LevelMax (libzstd -19; +Inf when the binary
//     has no cgo): the WAN queue holds twice the time the slow encode takes,
//     so the link stays busy while it runs, and every byte saved is time
//     saved: LevelMax.
//   - queueSeconds ≥ 1 (the WAN queue holds at least a second of traffic at
//     the current cap, or the link is paused with bytes queued): LevelBest.
//   - otherwise, when files are waiting for the encoder (ingest is falling
//     behind the link): LevelFastest, so the link does not run dry.
//   - otherwise, queueSeconds ≥ 0.25: LevelBetter.
//   - otherwise (link keeping up, nobody waiting): LevelDefault.
//
// A fixed Level in the configuration overrides the rule.
func chooseLevel(queueSeconds float64, waiting int, maxSeconds float64) dedupe.Level {
	switch {
	case !math.IsInf(maxSeconds, 1) && queueSeconds >= max(2, 2*maxSeconds):
		return dedupe.LevelMax
	case queueSeconds >= 1:
		return dedupe.LevelBest
	case waiting > 0:
		return dedupe.LevelFastest
	case queueSeconds >= 0.25:
		return dedupe.LevelBetter
	}
	return dedupe.LevelDefault
}

// The expected LevelMax encode time of a file is its payload length over
// maxRate, the literal bytes per second LevelMax encodes measured on this
// machine (an exponential average over files with at least maxRateSample
// literal bytes). It is pessimistic for files that are mostly references,
// which cost little at any level. initialMaxRate is the first guess, below
// the 1.1-2.9 MB/s measured for libzstd -19 on one core (docs/dedupe.md).
const (
	initialMaxRate = 1 << 20
	maxRateSample  = 256 << 10
)

// updateMaxRate folds one measured rate into the average (weight 1/4).
func updateMaxRate(avg, sample float64) float64 {
	if sample <= 0 || math.IsNaN(sample) || math.IsInf(sample, 0) {
		return avg
	}
	return avg + (sample-avg)/4
}
