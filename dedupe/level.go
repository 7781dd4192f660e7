package dedupe

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Level is the zstd effort spent on literals. The zero value means
// DefaultLevel. The proxy may change it per file (Encoder.SetLevel) to
// spend CPU where the link is the bottleneck: stronger while the WAN queue
// is full, lighter when ingest would fall behind the link.
type Level int

// Levels, weakest to strongest (klauspost/compress/zstd speeds).
const (
	LevelFastest Level = 1 // zstd.SpeedFastest (about zstd -1)
	LevelDefault Level = 2 // zstd.SpeedDefault (about zstd -3)
	LevelBetter  Level = 3 // zstd.SpeedBetterCompression (about zstd -7)
	LevelBest    Level = 4 // zstd.SpeedBestCompression (about zstd -11)
	LevelMax     Level = 5 // libzstd level 19 through cgo (zstd_cgo.go); about 7x slower than LevelBest
)

// MaxAvailable tells whether LevelMax can be used: the binary was built
// with cgo (libzstd). Without it, LevelMax is refused with an error.
func MaxAvailable() bool { return haveMax }

// DefaultLevel is the level of the zero Level (see docs/dedupe.md).
const DefaultLevel = LevelDefault

func (l Level) normalize() Level {
	if l == 0 {
		return DefaultLevel
	}
	return l
}

func (l Level) validate() error {
	if l < LevelFastest || l > LevelMax {
		return fmt.Errorf("dedupe: unknown level %d (want %d..%d)", l, LevelFastest, LevelMax)
	}
	if l == LevelMax && !haveMax {
		return errors.New("dedupe: level max needs a cgo build (libzstd); this binary has none")
	}
	return nil
}

// String names the level.
func (l Level) String() string {
	switch l.normalize() {
	case LevelFastest:
		return "fastest"
	case LevelDefault:
		return "default"
	case LevelBetter:
		return "better"
	case LevelBest:
		return "best"
	case LevelMax:
		return "max"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel parses "fastest", "default", "better", "best" or "max"
// ("max" only in a cgo build).
func ParseLevel(s string) (Level, error) {
	for l := LevelFastest; l <= LevelMax; l++ {
		if l.String() == s {
			return l, l.validate()
		}
	}
	return 0, fmt.Errorf("dedupe: unknown level %q (want fastest, default, better, best or max)", s)
}

func (l Level) zstd() zstd.EncoderLevel {
	switch l {
	case LevelFastest:
		return zstd.SpeedFastest
	case LevelBetter:
		return zstd.SpeedBetterCompression
	case LevelBest:
		return zstd.SpeedBestCompression
	}
	return zstd.SpeedDefault
}

// The klauspost zstd encoders of the literal streams: one at a time, made
// for the call and garbage after it. An encoder's match tables are fixed
// arrays sized by its level (~34 MiB at best); with a dictionary it builds
// a copy of them for the dictionary (as much again); its history holds two
// windows; and once reset for a new dictionary (ResetWithOptions) it also
// keeps a second, streaming state with tables of its own. Kept encoders
// (a sync.Pool of them per level with a dictionary, and a shared encoder
// per level with one state per CPU) made memory grow with the levels the
// adaptive rule visited and with overlapping calls: ~260 MB of them were
// live at the source edge's peak in make demo. One encoder at a time,
// serialized here (the proxy encodes one file at a time anyway), costs
// encoderMemory at most; making it costs well under a tenth of the
// encode's time at the strong levels, where its tables are large.
var zencMu sync.Mutex

var (
	zdecOnce sync.Once
	zdec     *zstd.Decoder
	zdecErr  error
)

// encoderMemory bounds what an encoder allocates for one call besides its
// output, at any level, with a dictionary of up to MaxDict bytes: at best,
// its tables, their copy for the dictionary and its history. Measured in
// TestCoderMemory, rounded up.
const encoderMemory = 112 << 20

// decoderMemory bounds the decoders' memory: the shared one (one 8 MiB
// window per state, min(GOMAXPROCS, 4) states) and the pooled dictionary
// ones (one per concurrent call).
const decoderMemory = 48 << 20

// EncoderMemory bounds the Go heap the zstd encoder of literal streams uses
// (one call at a time, at any level). LevelMax's libzstd context is C
// memory, counted apart (MaxLevelMemory).
func EncoderMemory() int64 { return encoderMemory }

// DecoderMemory bounds the Go heap of the zstd decoders of literal streams.
func DecoderMemory() int64 { return decoderMemory }

// withEncoder runs f with an encoder at level l with dict (nil: none) as
// its raw dictionary, one call at a time.
func withEncoder(l Level, dict []byte, f func(z *zstd.Encoder)) error {
	var opts []zstd.EOption
	if len(dict) > 0 {
		opts = append(opts, zstd.WithEncoderDictRaw(dictID, dict))
	}
	zencMu.Lock()
	defer zencMu.Unlock()
	z, err := newEncoder(l, opts...)
	if err != nil {
		return fmt.Errorf("%w (%d-byte dictionary)", err, len(dict))
	}
	f(z)
	return nil
}

// newEncoder makes an encoder at level l for EncodeAll (never Reset: that
// would add the streaming state).
func newEncoder(l Level, opts ...zstd.EOption) (*zstd.Encoder, error) {
	z, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithEncoderLevel(l.zstd()), zstd.WithWindowSize(zstdWindow),
		zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder at level %v: %w", l, err)
	}
	return z, nil
}

func zstdDecoder() (*zstd.Decoder, error) {
	zdecOnce.Do(func() {
		zdec, zdecErr = zstd.NewReader(nil,
			zstd.WithDecoderMaxWindow(zstdWindow),
			zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderConcurrency(min(runtime.GOMAXPROCS(0), 4)))
	})
	return zdec, zdecErr
}

// unzstd decompresses src, which must hold exactly want bytes. The output
// is bounded by want whatever the frame claims: a decompression bomb is an
// error wrapping ErrCorrupt, not an allocation.
func unzstd(src []byte, want int, what string) ([]byte, error) {
	if len(src) == 0 {
		if want != 0 {
			return nil, fmt.Errorf("%w: %s: empty literal stream, want %d bytes", ErrCorrupt, what, want)
		}
		return nil, nil
	}
	d, err := zstdDecoder()
	if err != nil {
		return nil, err
	}
	out, err := d.DecodeAll(src, make([]byte, 0, want))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: literal stream (want %d bytes): %w", ErrCorrupt, what, want, err)
	}
	if len(out) != want {
		return nil, fmt.Errorf("%w: %s: literal stream holds %d bytes, want %d", ErrCorrupt, what, len(out), want)
	}
	return out, nil
}

// Decoders with a raw dictionary (the bases of delta literals) are not
// shared: each call takes one from a pool and sets its dictionary.
var zdecDictPool sync.Pool // *zstd.Decoder

// dictID is the zstd dictionary id of the bases (any fixed value works:
// the dictionary is never stored, both sides rebuild it).
const dictID = 0x41494d44

// compressDict compresses lits with dict as initial history.
func compressDict(lits, dict []byte, l Level) ([]byte, error) {
	if l == LevelMax {
		return compressMax(lits, dict)
	}
	if len(dict) == 0 {
		return compress(lits, l)
	}
	if len(lits) == 0 {
		return nil, nil
	}
	var out []byte
	err := withEncoder(l, dict, func(z *zstd.Encoder) {
		out = z.EncodeAll(lits, make([]byte, 0, len(lits)/2+64))
	})
	return out, err
}

// unzstdDict is unzstd with dict as initial history.
func unzstdDict(src, dict []byte, want int, what string) ([]byte, error) {
	if len(dict) == 0 || len(src) == 0 {
		return unzstd(src, want, what)
	}
	d, _ := zdecDictPool.Get().(*zstd.Decoder)
	if d == nil {
		var err error
		d, err = zstd.NewReader(nil, zstd.WithDecoderMaxWindow(zstdWindow), zstd.WithDecodeAllCapLimit(true),
			zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
	}
	defer zdecDictPool.Put(d)
	// libzstd's frames (LevelMax) carry no dictionary id: register the
	// bases under 0 too.
	if err := d.ResetWithOptions(nil, zstd.WithDecoderDictRaw(dictID, dict), zstd.WithDecoderDictRaw(0, dict)); err != nil {
		return nil, fmt.Errorf("zstd dictionary of %d bytes: %w", len(dict), err)
	}
	out, err := d.DecodeAll(src, make([]byte, 0, want))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: literal stream (want %d bytes): %w", ErrCorrupt, what, want, err)
	}
	if len(out) != want {
		return nil, fmt.Errorf("%w: %s: literal stream holds %d bytes, want %d", ErrCorrupt, what, len(out), want)
	}
	return out, nil
}
