package aimsrc

import (
	"fmt"
	"path/filepath"
)

// alExtent is the region one activity-log bit covers.
const alExtent = 4 << 20

// activityLog remembers, durably, which extents of a volume may hold image
// writes whose journal record or image data is not yet durable. Capture sets
// an extent's bit and makes it durable before the first image write into it
// (one msync+fsync per newly active extent); Flush, once journal and image
// are durable, clears the extents not written since its start. Bits left
// set at start (a crash or power loss, not a clean stop) mark those extents
// dirty, so resync journals their current image content again: source and
// destination agree even when the kernel wrote an image page back before the
// journal record that describes it. Methods are called under the volume lock.
type activityLog struct {
	bits *bitmap  // one bit per extent
	gen  []uint32 // per extent: the flush generation of its last write
	cur  uint32   // current flush generation
}

func openActivityLog(buffer, volume string, size int64) (*activityLog, error) {
	b, err := openBitmap(filepath.Join(buffer, volume+".al"), size, alExtent)
	if err != nil {
		return nil, fmt.Errorf("activity log: %w", err)
	}
	return &activityLog{bits: b, gen: make([]uint32, b.nbits), cur: 1}, nil
}

// activate marks the extents of [off, off+length) active, durably when any
// was not yet, before the caller writes the image there.
func (a *activityLog) activate(off, length int64) error {
	newly := a.bits.set(off, length)
	for e := off / alExtent; e <= (off+length-1)/alExtent && e < int64(len(a.gen)); e++ {
		a.gen[e] = a.cur
	}
	if newly {
		return a.bits.sync()
	}
	return nil
}

// begin starts a flush: writes from now on belong to the next generation.
// It returns the generation the flush covers.
func (a *activityLog) begin() uint32 {
	g := a.cur
	a.cur++
	return g
}

// settle clears the extents last written in generation g or before: the
// flush made their journal records and image data durable. The cleared bits
// reach the disk lazily (a stale set bit only costs a redundant resync).
func (a *activityLog) settle(g uint32) {
	if a.bits.count.Load() == 0 {
		return
	}
	for i, c := range a.bits.bits {
		if c == 0 {
			continue // eight inactive extents
		}
		for e := int64(i) * 8; e < int64(i)*8+8 && e < a.bits.nbits; e++ {
			if a.gen[e] <= g && c&(1<<(e&7)) != 0 {
				a.bits.clear(e*alExtent, alExtent)
			}
		}
	}
}

// recover turns extents left active by an unclean stop into dirty regions
// and clears the log. It returns how many extents there were.
func (a *activityLog) recover(dirty *bitmap) (int64, error) {
	n := a.bits.count.Load()
	if n == 0 {
		return 0, nil
	}
	for e := int64(0); e < a.bits.nbits; e++ {
		if a.bits.bits[e>>3]&(1<<(e&7)) != 0 {
			dirty.set(e*alExtent, alExtent)
		}
	}
	if err := dirty.sync(); err != nil {
		return 0, err
	}
	if err := a.clearAll(); err != nil {
		return 0, err
	}
	return n, nil
}

// clearAll empties the log durably (clean stop, after journal and image are
// durable).
func (a *activityLog) clearAll() error {
	a.bits.clear(0, a.bits.size)
	return a.bits.sync()
}

func (a *activityLog) close() error { return a.bits.close() }
