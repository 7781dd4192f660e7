package dedupe

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
)

// Test image generator: a deterministic template made of regions of
// text-like, binary-like, random and zero data, and clones of it with a
// fraction of 4 KiB blocks rewritten.

const genBlock = 4 << 10

type imageGen struct {
	rng   *rand.Rand
	words []string
	zipf  *rand.Zipf
}

func newImageGen(seed uint64) *imageGen {
	g := &imageGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	for i := 0; i < 4000; i++ {
		var b strings.Builder
		n := 2 + g.rng.IntN(9)
		for k := 0; k < n; k++ {
			b.WriteByte(letters[min(g.rng.IntN(26), g.rng.IntN(26))])
		}
		g.words = append(g.words, b.String())
	}
	g.zipf = rand.NewZipf(g.rng, 1.1, 2, uint64(len(g.words)-1))
	return g
}

// text fills b with word salad with punctuation and lines.
func (g *imageGen) text(b []byte) {
	i := 0
	for i < len(b) {
		w := g.words[g.zipf.Uint64()]
		i += copy(b[i:], w)
		if i < len(b) {
			switch r := g.rng.IntN(20); {
			case r == 0:
				b[i] = '\n'
			case r == 1:
				b[i] = ','
			default:
				b[i] = ' '
			}
			i++
		}
	}
}

// binary fills b with record-like data: small counters, flags, repeated
// headers and some random pointers.
func (g *imageGen) binary(b []byte) {
	base := g.rng.Uint32()
	for i := 0; i+32 <= len(b); i += 32 {
		binary.LittleEndian.PutUint32(b[i:], 0xfeedface)
		binary.LittleEndian.PutUint32(b[i+4:], uint32(i/32))
		binary.LittleEndian.PutUint32(b[i+8:], base+uint32(g.rng.IntN(4096)))
		binary.LittleEndian.PutUint16(b[i+12:], uint16(g.rng.IntN(16)))
		binary.LittleEndian.PutUint64(b[i+16:], g.rng.Uint64()&0x0000_00ff_ffff_f000)
		b[i+24] = byte(g.rng.IntN(4))
	}
}

func (g *imageGen) random(b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.rng.Uint64())
	}
}

// fill writes one region kind into b: 0 text, 1 binary, 2 random, 3 zero.
func (g *imageGen) fill(b []byte, kind int) {
	switch kind {
	case 0:
		g.text(b)
	case 1:
		g.binary(b)
	case 2:
		g.random(b)
	default:
		clear(b)
	}
}

// template returns a size-byte image: regions of 64 KiB..1 MiB, about 35%
// text, 30% binary, 15% random, 20% zero.
func (g *imageGen) template(size int) []byte {
	img := make([]byte, size)
	for off := 0; off < size; {
		n := min(size-off, (16+g.rng.IntN(240))*genBlock)
		var kind int
		switch r := g.rng.IntN(100); {
		case r < 35:
			kind = 0
		case r < 65:
			kind = 1
		case r < 80:
			kind = 2
		default:
			kind = 3
		}
		g.fill(img[off:off+n], kind)
		off += n
	}
	return img
}

// clone returns a copy of tpl with frac of its 4 KiB blocks rewritten
// with new text or binary content, and the new blocks concatenated.
func (g *imageGen) clone(tpl []byte, frac float64) ([]byte, []byte) {
	img := append([]byte(nil), tpl...)
	blocks := len(img) / genBlock
	n := int(float64(blocks) * frac)
	var fresh []byte
	for k := 0; k < n; k++ {
		off := g.rng.IntN(blocks) * genBlock
		g.fill(img[off:off+genBlock], g.rng.IntN(2))
		fresh = append(fresh, img[off:off+genBlock]...)
	}
	return img, fresh
}
