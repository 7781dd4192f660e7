package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("bad bench config")

// Scale is a preset of workload sizes and phase lengths.
type Scale struct {
	// Name is how the scale is selected (tiny, small, full).
	Name string
	// TemplateSize is the size of the generated template (and every clone).
	TemplateSize int64
	// Passthrough is how long the pass-through phase runs.
	Passthrough time.Duration
	// OptimizeLimit bounds the optimized phase; reaching it is a failure
	// (the run did not drain).
	OptimizeLimit time.Duration
	// LineScale multiplies the seed's line (2 Mbit/s with 70 KB/s of cross
	// traffic) to give the scale's default line, so that a run as large as
	// the seed's finishes in a reasonable time; its figures are then also
	// given in seed units (rates / LineScale, durations × LineScale).
	// 0 means 1.
	LineScale float64
	// Thin creates the VMs thin: runs of zero blocks as NBD WRITE_ZEROES,
	// as `qemu-img convert -n` does, instead of thick (zeros as data).
	Thin bool
	// OneByOne creates the clones of a phase one after another instead of
	// side by side.
	OneByOne bool
	// CrossPacket is the size of a cross-traffic packet on the simulated
	// line (0: the link simulator's 200 bytes, a VoIP packet). A scaled
	// line scales it too, so the cross traffic keeps the seed's 350
	// packets a second: at 3500 a second the simulator's packet clock
	// fell behind on a loaded machine (185 KB/s instead of 700 KB/s).
	CrossPacket int
}

// Scales are the presets, by name.
var Scales = map[string]Scale{
	"tiny":  {Name: "tiny", TemplateSize: 8 << 20, Passthrough: 15 * time.Second, OptimizeLimit: 90 * time.Second},
	"small": {Name: "small", TemplateSize: 256 << 20, Passthrough: 100 * time.Second, OptimizeLimit: 6 * time.Minute},
	"full":  {Name: "full", TemplateSize: 1 << 30, Passthrough: 120 * time.Second, OptimizeLimit: 40 * time.Minute},
	// seed: the seed's own sizes (three 12 GiB VMs from one template,
	// created one after another) on a line 10x the seed's; thin, because
	// thick images, their journals and the destination's copies would need
	// about 120 GB of disk (docs/bench.md).
	"seed": {Name: "seed", TemplateSize: 12 << 30, Passthrough: 4 * time.Minute, OptimizeLimit: 4 * time.Hour,
		LineScale: 10, Thin: true, OneByOne: true, CrossPacket: 2000},
}

// seedRate and seedCross are the seed's line and cross traffic in bytes per
// second (the default line of every scale, times its LineScale).
const (
	seedRate  = 250_000
	seedCross = 70_000
)

// DefaultScale is the scale of `make demo`.
const DefaultScale = "small"

// Config of a bench run. The zero value of every optional field means its
// default.
type Config struct {
	// Out is the run folder: recordings, result.json, phases.json and the
	// work folder (images, buffers, caches) under Out/work. Required.
	Out string
	// Bin is the aimwan binary the daemons are started from. Required (the
	// command passes os.Executable()).
	Bin string
	// Scale selects the preset (default DefaultScale).
	Scale string
	// Images, when given, are the user's own VM images used as the clones
	// instead of generated ones: all but the last are created in the
	// pass-through phase, the last in the optimized phase. At least 2.
	Images []string
	// Template is an image to prime the destination cache with when Prime is
	// set and Images are given (the generated template otherwise).
	Template string
	// Seed of the generated workload (default 1).
	Seed uint64
	// Rate of the simulated line in bytes per second (default 250000 =
	// 2 Mbit/s, times the scale's LineScale). +Inf: no rate limit (the
	// proxies then keep their default window sizing and cross traffic
	// defaults to none).
	Rate float64
	// RTT of the simulated line (default 40ms).
	RTT time.Duration
	// Cross is the cross traffic in bytes per second (default 70000, times
	// the scale's LineScale); a negative value means none.
	Cross float64
	// Loss is the random loss of the simulated line (0..1; 0 = none).
	Loss float64
	// ProxyArgs are extra flags given to both proxies (e.g. "--conns", "16").
	ProxyArgs []string
	// ProxyBin, when set, is the binary the two proxies run from (another
	// build's proxies over the same src, dst and link: a before/after).
	ProxyBin string
	// NoLink connects the proxies directly, without the link simulator
	// (development only: nothing limits the rate, speed-ups are meaningless).
	NoLink bool
	// Prime loads the template into the destination edge's chunk store
	// before the run (a real-world option; off by default, reported).
	Prime bool
	// Passthrough overrides the scale's pass-through phase length; a
	// negative value means no pass-through phase: the chain starts
	// optimizing and every clone is created in the optimized phase, one
	// after another.
	Passthrough time.Duration
	// Thin creates the VMs thin whatever the scale (see Scale.Thin).
	Thin bool
	// Limit overrides the optimized phase's time limit (default: the
	// scale's; with Images, at least the time the line needs for every
	// written byte uncompressed).
	Limit time.Duration
	// NoEstimate skips the offline estimate (sim/estimate) of the images
	// after the run.
	NoEstimate bool
	// Progress receives a progress line every few seconds and the final
	// table (default os.Stdout; io.Discard to silence).
	Progress io.Writer
	// ProgressEvery is the period of progress lines (default 5s).
	ProgressEvery time.Duration
	// Logger for the orchestration's own messages (nil = slog.Default()).
	Logger *slog.Logger
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Scale == "" {
		c.Scale = DefaultScale
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	ls := Scales[c.Scale].lineScale()
	if c.Rate == 0 {
		c.Rate = seedRate * ls
	}
	if c.RTT == 0 {
		c.RTT = 40 * time.Millisecond
	}
	switch {
	case c.Cross == 0 && math.IsInf(c.Rate, 1):
		c.Cross = 0 // no cross traffic on an unlimited line unless asked
	case c.Cross == 0:
		c.Cross = seedCross * ls
	case c.Cross < 0:
		c.Cross = 0
	}
	if c.Progress == nil {
		c.Progress = os.Stdout
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports settings that cannot work (after withDefaults).
func (c Config) validate() error {
	switch {
	case c.Out == "":
		return fmt.Errorf("%w: no output folder", ErrConfig)
	case c.Bin == "":
		return fmt.Errorf("%w: no aimwan binary", ErrConfig)
	case len(c.Images) == 1:
		return fmt.Errorf("%w: --images needs at least 2 images (the last one is created in the optimized phase)", ErrConfig)
	case len(c.Images) > 16:
		return fmt.Errorf("%w: %d images: at most 16", ErrConfig, len(c.Images))
	case !(c.Rate > 0):
		return fmt.Errorf("%w: line rate %v: want a positive rate (or unlimited)", ErrConfig, c.Rate)
	case math.IsInf(c.Cross, 0) || math.IsNaN(c.Cross):
		return fmt.Errorf("%w: cross traffic %v: want a finite rate", ErrConfig, c.Cross)
	case c.Cross >= c.Rate:
		return fmt.Errorf("%w: cross traffic %.0f B/s fills the whole line (%.0f B/s)", ErrConfig, c.Cross, c.Rate)
	case c.RTT < 0 || c.RTT > 10*time.Second:
		return fmt.Errorf("%w: RTT %v: want 0..10s", ErrConfig, c.RTT)
	case c.Limit < 0:
		return fmt.Errorf("%w: negative time limit %v", ErrConfig, c.Limit)
	case c.Prime && len(c.Images) > 0 && c.Template == "":
		return fmt.Errorf("%w: --prime with --images needs --template IMG (the image the DR site already holds)", ErrConfig)
	}
	if _, ok := Scales[c.Scale]; !ok {
		return fmt.Errorf("%w: unknown scale %q (tiny, small, full, seed)", ErrConfig, c.Scale)
	}
	return nil
}

// scale is the selected preset with overrides applied.
func (c Config) scale() Scale {
	s := Scales[c.Scale]
	if c.Passthrough != 0 {
		s.Passthrough = c.Passthrough
	}
	if s.Passthrough < 0 { // all clones in the optimized phase, one after another
		s.OneByOne = true
	}
	s.Thin = s.Thin || c.Thin
	if c.Limit > 0 {
		s.OptimizeLimit = c.Limit
	}
	return s
}

// lineScale is LineScale, 1 when unset.
func (s Scale) lineScale() float64 {
	if s.LineScale > 0 {
		return s.LineScale
	}
	return 1
}

// noPassthrough reports whether the run has no pass-through phase.
func (s Scale) noPassthrough() bool { return s.Passthrough < 0 }

// unlimited reports whether the line has no rate limit.
func (c Config) unlimited() bool { return math.IsInf(c.Rate, 1) }
