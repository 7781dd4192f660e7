package dedupe

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/restic/chunker"
)

// DefaultPol is the fixed, irreducible polynomial (degree 53) of the Rabin
// rolling hash that both peers use to find chunk boundaries. Changing it
// changes every chunk boundary: it is part of the protocol ([Params.ID]).
const DefaultPol = chunker.Pol(0x3DA3358B4DC173)

// Defaults and hard limits of the chunking parameters.
const (
	// DefaultAvgSize is the default average chunk size (see docs/dedupe.md for
	// the measurements it was chosen from).
	DefaultAvgSize = 8 << 10
	// DefaultZeroRun is the default shortest run of zero bytes that is sent as
	// a zero-run op instead of being chunked.
	DefaultZeroRun = 4 << 10
	// MinChunkLimit is the smallest allowed MinSize: the chunker's window is
	// 64 bytes and a smaller minimum wraps around inside restic/chunker.
	MinChunkLimit = 64
	// MaxChunkLimit is the largest allowed MaxSize (part of the protocol
	// since the first store, a RAM cache whose entries had to stay below
	// 64 KiB; the disk store's container tables check it too).
	MaxChunkLimit = 60 << 10
	// FingerprintAlgo names the fingerprint function; it is part of the ID.
	FingerprintAlgo = "sha256"
)

// Params are the chunking and fingerprint parameters. Both proxies must use
// equal Params: they compare [Params.ID] (or [Params.Hash]) in their
// handshake and refuse a mismatch. The zero value means the defaults.
type Params struct {
	// Pol is the Rabin polynomial. 0 means DefaultPol. It must be
	// irreducible with degree at most 53.
	Pol chunker.Pol
	// AvgSize is the average chunk size in bytes, a power of two.
	// 0 means DefaultAvgSize.
	AvgSize int
	// MinSize is the smallest chunk (except the last of a segment).
	// 0 means AvgSize/2. At least MinChunkLimit.
	MinSize int
	// MaxSize is the largest chunk. 0 means min(AvgSize*4, MaxChunkLimit).
	// At most MaxChunkLimit.
	MaxSize int
	// ZeroRun is the shortest run of zero bytes sent as a zero-run op.
	// 0 means DefaultZeroRun. At least MinChunkLimit.
	ZeroRun int
}

// ErrParams reports invalid chunking parameters.
var ErrParams = errors.New("invalid dedupe params")

// withDefaults returns p with zero fields replaced by their defaults.
func (p Params) withDefaults() Params {
	if p.Pol == 0 {
		p.Pol = DefaultPol
	}
	if p.AvgSize == 0 {
		p.AvgSize = DefaultAvgSize
	}
	if p.MinSize == 0 {
		p.MinSize = p.AvgSize / 2
	}
	if p.MaxSize == 0 {
		p.MaxSize = min(p.AvgSize*4, MaxChunkLimit)
	}
	if p.ZeroRun == 0 {
		p.ZeroRun = DefaultZeroRun
	}
	return p
}

// validate checks filled-in params.
func (p Params) validate() error {
	switch {
	case p.Pol.Deg() > 53 || p.Pol.Deg() < 9:
		return fmt.Errorf("%w: polynomial %v has degree %d, want 9..53", ErrParams, p.Pol, p.Pol.Deg())
	case p.AvgSize <= 0 || bits.OnesCount(uint(p.AvgSize)) != 1:
		return fmt.Errorf("%w: average size %d is not a power of two", ErrParams, p.AvgSize)
	case p.MinSize < MinChunkLimit:
		return fmt.Errorf("%w: min size %d below %d", ErrParams, p.MinSize, MinChunkLimit)
	case p.MaxSize > MaxChunkLimit:
		return fmt.Errorf("%w: max size %d above %d", ErrParams, p.MaxSize, MaxChunkLimit)
	case p.MinSize > p.AvgSize || p.AvgSize > p.MaxSize:
		return fmt.Errorf("%w: want min %d <= avg %d <= max %d", ErrParams, p.MinSize, p.AvgSize, p.MaxSize)
	case p.ZeroRun < MinChunkLimit:
		return fmt.Errorf("%w: zero run %d below %d", ErrParams, p.ZeroRun, MinChunkLimit)
	}
	return nil
}

// Normalize returns the params with defaults filled in, or an error wrapping
// ErrParams. Irreducibility of a custom polynomial is checked too (slow-ish:
// do it once at startup).
func (p Params) Normalize() (Params, error) {
	p = p.withDefaults()
	if err := p.validate(); err != nil {
		return p, err
	}
	if p.Pol != DefaultPol && !p.Pol.Irreducible() {
		return p, fmt.Errorf("%w: polynomial %v is reducible", ErrParams, p.Pol)
	}
	return p, nil
}

// avgBits is log2(AvgSize), the value passed to Chunker.SetAverageBits.
func (p Params) avgBits() int { return bits.TrailingZeros(uint(p.AvgSize)) }

// ID is the stable, human-readable identity of the parameters, compared by
// the proxies in their handshake. Defaults are filled in first, so the zero
// Params and the explicit defaults have the same ID.
func (p Params) ID() string {
	p = p.withDefaults()
	return fmt.Sprintf("aimwan-dedupe/%d pol=0x%x min=%d avg=%d max=%d zero=%d fp=%s",
		formatVersion, uint64(p.Pol), p.MinSize, p.AvgSize, p.MaxSize, p.ZeroRun, FingerprintAlgo)
}

// Hash is the first 8 bytes (big-endian) of SHA-256(ID): a compact form of
// the ID carried in every encoded stream.
func (p Params) Hash() uint64 {
	h := sha256.Sum256([]byte(p.ID()))
	return binary.BigEndian.Uint64(h[:8])
}
