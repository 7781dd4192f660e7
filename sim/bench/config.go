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
}

// Scales are the presets, by name.
var Scales = map[string]Scale{
	"tiny":  {Name: "tiny", TemplateSize: 8 << 20, Passthrough: 15 * time.Second, OptimizeLimit: 90 * time.Second},
	"small": {Name: "small", TemplateSize: 256 << 20, Passthrough: 100 * time.Second, OptimizeLimit: 6 * time.Minute},
	"full":  {Name: "full", TemplateSize: 1 << 30, Passthrough: 120 * time.Second, OptimizeLimit: 40 * time.Minute},
}

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
	// 2 Mbit/s).
	Rate float64
	// RTT of the simulated line (default 40ms).
	RTT time.Duration
	// Cross is the cross traffic in bytes per second (default 70000); a
	// negative value means none.
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
	// Passthrough overrides the scale's pass-through phase length.
	Passthrough time.Duration
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
	if c.Rate == 0 {
		c.Rate = 250_000
	}
	if c.RTT == 0 {
		c.RTT = 40 * time.Millisecond
	}
	if c.Cross == 0 {
		c.Cross = 70_000
	} else if c.Cross < 0 {
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
	case c.Rate <= 0 || math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate):
		return fmt.Errorf("%w: line rate %v: want a finite positive rate", ErrConfig, c.Rate)
	case c.Cross >= c.Rate:
		return fmt.Errorf("%w: cross traffic %.0f B/s fills the whole line (%.0f B/s)", ErrConfig, c.Cross, c.Rate)
	case c.RTT < 0 || c.RTT > 10*time.Second:
		return fmt.Errorf("%w: RTT %v: want 0..10s", ErrConfig, c.RTT)
	case c.Passthrough < 0:
		return fmt.Errorf("%w: negative pass-through phase %v", ErrConfig, c.Passthrough)
	case c.Prime && len(c.Images) > 0 && c.Template == "":
		return fmt.Errorf("%w: --prime with --images needs --template IMG (the image the DR site already holds)", ErrConfig)
	}
	if _, ok := Scales[c.Scale]; !ok {
		return fmt.Errorf("%w: unknown scale %q (tiny, small, full)", ErrConfig, c.Scale)
	}
	return nil
}

// scale is the selected preset with overrides applied.
func (c Config) scale() Scale {
	s := Scales[c.Scale]
	if c.Passthrough > 0 {
		s.Passthrough = c.Passthrough
	}
	return s
}
