package dedupe

import (
	"sync"

	"github.com/restic/chunker"
)

// rabin finds the same cut points as restic/chunker (v0.4.0) but works on
// a byte slice in place: no copy into the chunker's buffer and none into
// Chunk.Data. TestRabinMatchesChunker checks it against the library, which
// stays the reference implementation.
type rabin struct {
	out, mod [256]uint64
	shift    uint
}

const rabinWindow = 64

var rabinCache sync.Map // chunker.Pol -> *rabin

func rabinFor(pol chunker.Pol) *rabin {
	if r, ok := rabinCache.Load(pol); ok {
		return r.(*rabin)
	}
	r := &rabin{shift: uint(pol.Deg() - 8)}
	for b := 0; b < 256; b++ {
		// out[b] = Hash(b || 0 * (window-1)): what sliding b out removes.
		var h chunker.Pol
		h = appendByte(h, byte(b), pol)
		for i := 0; i < rabinWindow-1; i++ {
			h = appendByte(h, 0, pol)
		}
		r.out[b] = uint64(h)
	}
	k := pol.Deg()
	for b := 0; b < 256; b++ {
		r.mod[b] = uint64(chunker.Pol(uint64(b)<<uint(k)).Mod(pol) | (chunker.Pol(b) << uint(k)))
	}
	v, _ := rabinCache.LoadOrStore(pol, r)
	return v.(*rabin)
}

func appendByte(h chunker.Pol, b byte, pol chunker.Pol) chunker.Pol {
	h <<= 8
	h |= chunker.Pol(b)
	return h.Mod(pol)
}

// cut returns the length of the chunk that starts at b[0], b being the
// rest of the segment: restic's rule with the hash reset at every chunk
// start (window zero but for a 1 slid in first), MinSize-64 bytes skipped
// unhashed, a cut where digest&mask == 0 at or after MinSize, or at MaxSize.
func (r *rabin) cut(b []byte, minSize, maxSize int, mask uint64) int {
	pre := minSize - rabinWindow
	if len(b) <= pre || len(b) <= minSize {
		return len(b)
	}
	b = b[:min(len(b), maxSize)]
	shift := r.shift & 63
	digest := uint64(1) // slide(0, 1) on an empty window
	// First 64 hashed bytes: what leaves the window is the initial content,
	// 63 zeros then the 1.
	i := pre
	for k := 0; k < rabinWindow; k, i = k+1, i+1 {
		var o byte
		if k == rabinWindow-1 {
			o = 1
		}
		c := b[i]
		digest ^= r.out[o]
		digest = (digest<<8 | uint64(c)) ^ r.mod[byte(digest>>shift)]
	}
	// i == minSize now: cuts are allowed from here on.
	if digest&mask == 0 {
		return i
	}
	for ; i < len(b); i++ {
		c := b[i]
		digest ^= r.out[b[i-rabinWindow]]
		digest = (digest<<8 | uint64(c)) ^ r.mod[byte(digest>>shift)]
		if digest&mask == 0 {
			return i + 1
		}
	}
	return len(b)
}
