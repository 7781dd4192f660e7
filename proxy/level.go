package proxy

import (
	"github.com/aimwan/aimwan/dedupe"
)

// chooseLevel is the adaptive compression rule. CPU is spent where the link is
// the bottleneck:
//
//   - queueSeconds ≥ 1 (the WAN queue holds at least a second of traffic at
//     the current cap, or the link is paused with bytes queued): the link is
//     the bottleneck, so every byte saved is time saved: LevelBest.
//   - otherwise, when files are waiting for the encoder (ingest is falling
//     behind the link): LevelFastest, so the link does not run dry.
//   - otherwise, queueSeconds ≥ 0.25: LevelBetter.
//   - otherwise (link keeping up, nobody waiting): LevelDefault.
//
// A fixed Level in the configuration overrides the rule.
func chooseLevel(queueSeconds float64, waiting int) dedupe.Level {
	switch {
	case queueSeconds >= 1:
		return dedupe.LevelBest
	case waiting > 0:
		return dedupe.LevelFastest
	case queueSeconds >= 0.25:
		return dedupe.LevelBetter
	}
	return dedupe.LevelDefault
}
