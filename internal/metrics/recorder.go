package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RecorderConfig configures a Recorder. The zero value of every optional
// field means its default.
type RecorderConfig struct {
	// Dir is the folder the recording goes to (created if missing). Required.
	Dir string
	// Daemon names the recording: samples go to <Dir>/<Daemon>.jsonl.
	// Required; 1..64 characters of [A-Za-z0-9_-].
	Daemon string
	// Gatherer is what is sampled, usually the daemon's registry. Required.
	Gatherer prometheus.Gatherer
	// Interval between samples. Default 1s.
	Interval time.Duration
	// Now is the clock that stamps samples. Default time.Now.
	Now func() time.Time
	// NewTicker makes the ticker that paces samples and returns its channel and
	// a stop function. Default: a time.Ticker. Tests inject their own.
	NewTicker func(d time.Duration) (<-chan time.Time, func())
	// Registerer, when set, receives the recorder's own metrics
	// (aimwan_recorder_samples_total, aimwan_recorder_errors_total).
	Registerer prometheus.Registerer
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *RecorderConfig) populate() {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewTicker == nil {
		c.NewTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *RecorderConfig) validate() error {
	if c.Dir == "" {
		return errors.New("recorder: no directory")
	}
	if err := validName(c.Daemon); err != nil {
		return fmt.Errorf("recorder: daemon name: %w", err)
	}
	if c.Gatherer == nil {
		return errors.New("recorder: no gatherer")
	}
	if c.Interval < 0 {
		return fmt.Errorf("recorder: negative interval %v", c.Interval)
	}
	return nil
}

// ErrRecordingInUse: another recorder appends to the same file (two daemons
// recording into one folder under the same name).
var ErrRecordingInUse = errors.New("recording in use by another recorder (give each daemon its own name)")

// validName mirrors journal.ValidName: 1..64 characters of [A-Za-z0-9_-].
func validName(s string) error {
	if len(s) == 0 || len(s) > 64 {
		return fmt.Errorf("name %q: want 1..64 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return fmt.Errorf("name %q: character %q not in [A-Za-z0-9_-]", s, c)
		}
	}
	return nil
}

// Recorder appends a sample of a Gatherer to <Dir>/<Daemon>.jsonl once per
// Interval while Serve runs. Each line is self-contained, so a crash loses at
// most the line being written (the loader skips a torn last line).
type Recorder struct {
	cfg     RecorderConfig
	path    string
	samples prometheus.Counter
	errs    prometheus.Counter
}

// NewRecorder checks cfg and registers the recorder's own metrics.
func NewRecorder(cfg RecorderConfig) (*Recorder, error) {
	cfg.populate()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Recorder{
		cfg:  cfg,
		path: filepath.Join(cfg.Dir, cfg.Daemon+".jsonl"),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: RecorderSamples,
			Help: "Samples appended to the JSONL recording.",
		}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: RecorderErrors,
			Help: "Samples that could not be gathered completely or written.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.samples, r.errs} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("recorder: register metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Path is the file the recorder appends to.
func (r *Recorder) Path() string { return r.path }

// Serve takes a sample at once, then one per tick, until ctx ends; it takes a
// last sample on the way out so the recording ends with the final figures.
// It returns nil when ctx ends, or an error when the file cannot be opened.
// A failed sample is logged and counted, not fatal.
func (r *Recorder) Serve(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("recorder %s: %w", r.cfg.Daemon, err)
	}
	f, err := os.OpenFile(r.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("recorder %s: %w", r.cfg.Daemon, err)
	}
	if err := lockRecording(f); err != nil {
		f.Close()
		return fmt.Errorf("recorder %s: %w", r.cfg.Daemon, err)
	}
	if err := dropTornLine(f); err != nil {
		f.Close()
		return fmt.Errorf("recorder %s: %w", r.cfg.Daemon, err)
	}
	tick, stop := r.cfg.NewTicker(r.cfg.Interval)
	defer stop()
	r.sampleTo(f)
	for {
		select {
		case <-ctx.Done():
			r.sampleTo(f)
			if err := f.Close(); err != nil {
				return fmt.Errorf("recorder %s: close %s: %w", r.cfg.Daemon, r.path, err)
			}
			return nil
		case <-tick:
			r.sampleTo(f)
		}
	}
}

// dropTornLine cuts off a last line left without its newline by a crash:
// the next sample appended to it would make a bad line in the middle of the
// recording, which the loader refuses (it drops only a torn last line).
func dropTornLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("torn line check: %w", err)
	}
	size := st.Size()
	buf := make([]byte, 64<<10)
	keep := int64(0) // bytes up to and including the last newline
	for end := size; end > 0; {
		start := max(0, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil {
			return fmt.Errorf("torn line check of %s: %w", f.Name(), err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		end = start
	}
	if keep == size {
		return nil
	}
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("cut torn line of %s: %w", f.Name(), err)
	}
	return nil
}

// sampleTo gathers, encodes and appends one line, logging any failure.
func (r *Recorder) sampleTo(f *os.File) {
	if err := r.writeSample(f); err != nil {
		r.errs.Inc()
		r.cfg.Logger.Warn("recording sample", "daemon", r.cfg.Daemon, "err", err)
		return
	}
	r.samples.Inc()
}

func (r *Recorder) writeSample(f *os.File) error {
	mfs, gerr := r.cfg.Gatherer.Gather()
	if len(mfs) == 0 && gerr != nil {
		return fmt.Errorf("gather: %w", gerr)
	}
	line, err := json.Marshal(Sample{Time: r.cfg.Now(), Values: Flatten(mfs)})
	if err != nil {
		return fmt.Errorf("encode sample: %w", err)
	}
	line = append(line, '\n')
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("append to %s: %w", r.path, err)
	}
	if gerr != nil {
		return fmt.Errorf("gather (partial sample written): %w", gerr)
	}
	return nil
}
