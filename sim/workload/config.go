package workload

import (
	"errors"
	"fmt"
	"math"
)

// BlockSize is the unit of layout and change: a filesystem block.
const BlockSize = 4096

// Mix gives the share of the used (file) blocks of a template per kind of
// content. Shares are relative: they need not add up to 1. The zero Mix
// means DefaultMix.
type Mix struct {
	Prose  float64 `yaml:"prose" json:"prose"`   // documentation text
	Config float64 `yaml:"config" json:"config"` // configuration files
	Log    float64 `yaml:"log" json:"log"`       // log files
	Binary float64 `yaml:"binary" json:"binary"` // executables and libraries
	Packed float64 `yaml:"packed" json:"packed"` // already compressed data
	// Meta is filesystem overhead beyond the inode tables at each block
	// group's start: journal, directory and extent-tree blocks. On a real
	// ext4 image of a Debian install it is about a third of the used part.
	Meta float64 `yaml:"meta" json:"meta"`
}

// DefaultMix is calibrated so that the used part of a template compresses
// about as well as an ext4 image of real Debian packages (docs/workload.md).
var DefaultMix = Mix{Prose: 0.15, Config: 0.13, Log: 0.03, Binary: 0.30, Packed: 0.03, Meta: 0.36}

func (m Mix) weights() [numKinds]float64 {
	var w [numKinds]float64
	w[KindProse], w[KindConfig], w[KindLog], w[KindBinary], w[KindPacked], w[KindMeta] = m.Prose, m.Config, m.Log, m.Binary, m.Packed, m.Meta
	return w
}

// Config describes a template and how its clones differ. The zero value is a
// 64 MiB template of seed 0 with default mix and change rate.
type Config struct {
	// Size of the template image in bytes, rounded up to BlockSize.
	// Default 64 MiB.
	Size int64
	// Seed makes the template; the same seed gives the same bytes.
	Seed uint64
	// UsedFraction is the share of blocks holding files or metadata; the
	// rest is free space (zeros). Default 0.55.
	UsedFraction float64
	// ChangeFraction is the share of a clone's blocks rewritten relative to
	// the template (identity, logs, page file, updates, new data). Default
	// 0.015.
	ChangeFraction float64
	// Mix of content kinds in the used blocks. Zero means DefaultMix.
	Mix Mix
}

// ErrBadConfig is wrapped by every configuration error.
var ErrBadConfig = errors.New("bad workload config")

func (c Config) withDefaults() Config {
	if c.Size == 0 {
		c.Size = 64 << 20
	}
	c.Size = (c.Size + BlockSize - 1) / BlockSize * BlockSize
	if c.UsedFraction == 0 {
		c.UsedFraction = 0.55
	}
	if c.ChangeFraction == 0 {
		c.ChangeFraction = 0.015
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	return c
}

func (c Config) validate() error {
	if c.Size < 16*BlockSize {
		return fmt.Errorf("%w: size %d is below the minimum of %d bytes", ErrBadConfig, c.Size, 16*BlockSize)
	}
	if !(c.UsedFraction > 0 && c.UsedFraction <= 1) {
		return fmt.Errorf("%w: used fraction %v is not in (0, 1]", ErrBadConfig, c.UsedFraction)
	}
	if !(c.ChangeFraction > 0 && c.ChangeFraction <= 0.5) {
		return fmt.Errorf("%w: change fraction %v is not in (0, 0.5]", ErrBadConfig, c.ChangeFraction)
	}
	var sum float64
	for _, w := range c.Mix.weights() {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("%w: mix share %v is negative or not finite", ErrBadConfig, w)
		}
		sum += w
	}
	if sum <= 0 {
		return fmt.Errorf("%w: mix has no positive share", ErrBadConfig)
	}
	return nil
}
