package workload

import "encoding/binary"

// Operand encodings of a synthetic instruction.
const (
	opNone = iota
	opModRM
	opModRMImm8
	opModRMDisp32
	opImm32
	opRel32
	opImm8
	numOps
)

// insn is one instruction template: opcode bytes and an operand encoding.
type insn struct {
	op      [3]byte
	n       uint8
	operand uint8
}

// isa is a synthetic instruction set: a few hundred instruction templates
// drawn with Zipf frequencies, like real compiled code where a handful of
// moves, calls and jumps dominate.
type isa struct {
	insns  [256]insn
	zipf   [1024]uint8 // uniform 10 bits → instruction index, ∝ 1/rank
	modrm  [16]byte
	idioms *vocab // instruction sequences, Zipf-frequent
}

func newISA(seed uint64) *isa {
	r := rng{s: mix(seed, 0x697361)}
	s := &isa{}
	for i := range s.insns {
		in := &s.insns[i]
		in.n = uint8(1 + r.intn(3))
		if i < 64 {
			in.n = 1 + uint8(i&1)
		}
		prefixes := [...]byte{0x48, 0x0f, 0x66, 0x41}
		for j := range int(in.n) {
			in.op[j] = byte(r.next())
			if j == 0 && in.n > 1 {
				in.op[0] = prefixes[r.intn(len(prefixes))]
			}
		}
		in.operand = uint8(r.intn(numOps))
	}
	for i := range s.modrm {
		s.modrm[i] = byte(r.next())
	}
	// Inverse CDF of p(rank) ∝ 1/rank over 256 ranks.
	var h float64
	for k := 1; k <= 256; k++ {
		h += 1 / float64(k)
	}
	k, c := 1, 1/h
	for i := range s.zipf {
		u := (float64(i) + 0.5) / float64(len(s.zipf))
		for c < u && k < 256 {
			k++
			c += 1 / (float64(k) * h)
		}
		s.zipf[i] = uint8(k - 1)
	}
	items := make([][]byte, 8000)
	var buf [64]byte
	for i := range items {
		n := 0
		for range 2 + r.intn(5) {
			n += s.insn(buf[n:], r.next())
		}
		items[i] = append([]byte(nil), buf[:n]...)
	}
	s.idioms = newVocab(items, 1.05)
	return s
}

// binary writes a block of an executable: mostly code, some relocation or
// pointer tables, symbol strings and zero padding.
func (g *gen) binary(dst []byte, r *rng) {
	switch x := r.intn(100); {
	case x < 58:
		g.isa.code(dst, r)
	case x < 72:
		table(dst, r)
	case x < 88:
		g.symbols(dst, r)
	default:
		padding(dst, r, g)
	}
}

// code writes instruction-like bytes: common idioms (instruction sequences
// that compilers emit again and again) and single instructions, with
// function prologues and int3 padding.
func (s *isa) code(dst []byte, r *rng) {
	n := 0
	for n+32 <= len(dst) {
		x := r.next()
		switch {
		case x&63 == 0: // function boundary: pad to 16, then a prologue
			for n%16 != 0 {
				dst[n] = 0xcc
				n++
			}
			n += copy(dst[n:], []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5})
		case x>>6&3 >= 2:
			n += copy(dst[n:], s.idioms.rand(x>>8))
		default:
			n += s.insn(dst[n:], x>>8)
		}
	}
	for ; n < len(dst); n++ {
		dst[n] = 0xcc
	}
}

// insn writes one instruction drawn from x and returns its length (≤ 8).
func (s *isa) insn(dst []byte, x uint64) int {
	in := &s.insns[s.zipf[x&1023]]
	n := copy(dst, in.op[:in.n])
	y := x >> 10
	switch in.operand {
	case opModRM:
		dst[n] = s.modrm[y&15]
		n++
	case opModRMImm8:
		dst[n], dst[n+1] = s.modrm[y&15], smallByte(y>>4)
		n += 2
	case opModRMDisp32:
		dst[n] = s.modrm[y&15]
		binary.LittleEndian.PutUint32(dst[n+1:], small32(y>>4))
		n += 5
	case opImm32:
		binary.LittleEndian.PutUint32(dst[n:], small32(y))
		n += 4
	case opRel32:
		v := uint32(y & 0xfffff)
		if y&(1<<21) != 0 {
			v = -v
		}
		binary.LittleEndian.PutUint32(dst[n:], v)
		n += 4
	case opImm8:
		dst[n] = smallByte(y)
		n++
	}
	return n
}

// smallByte: immediates are mostly small numbers.
func smallByte(y uint64) byte {
	if y&3 != 0 {
		return byte(y >> 2 & 15)
	}
	return byte(y >> 2)
}

// small32: displacements and constants are mostly small, sometimes wide.
func small32(y uint64) uint32 {
	switch y & 7 {
	case 0, 1, 2, 3:
		return uint32(y >> 3 & 0xff)
	case 4, 5:
		return uint32(y >> 3 & 0xffff)
	default:
		return uint32(y >> 3)
	}
}

// table writes 64-bit pointer or relocation entries: increasing offsets with
// small strides, shared high bits.
func table(dst []byte, r *rng) {
	base := r.next() & 0x3fffff0
	stride := uint64(8 << r.intn(3))
	rela := r.intn(2) == 0
	for i := 0; i+24 <= len(dst); {
		x := r.next()
		base += stride + (x&3)*stride
		binary.LittleEndian.PutUint64(dst[i:], base)
		i += 8
		if rela {
			binary.LittleEndian.PutUint64(dst[i:], (x>>8&0x3ff)<<32|uint64(6+x>>20&1))
			binary.LittleEndian.PutUint64(dst[i+8:], 0)
			i += 16
		}
	}
	clear(dst[len(dst)/24*24:])
}

var symbolPrefixes = [...]string{"", "_ZN", "__", "g_", "", "", "_", "xml"}

// symbols writes a string table: NUL-terminated identifiers built from words.
func (g *gen) symbols(dst []byte, r *rng) {
	n := 0
	for n < len(dst) {
		x := r.next()
		n += copy(dst[n:], symbolPrefixes[x&7])
		for j := 0; j <= int(x>>3&1); j++ {
			if j > 0 {
				n += copy(dst[n:], "_")
			}
			n += copy(dst[n:], g.v.word(g.v.pick(r.next())))
		}
		if x>>8&15 == 0 {
			n += copy(dst[n:], "@GLIBC_2.")
			n += putUint(dst[n:], x>>12&31)
		}
		if n < len(dst) {
			dst[n] = 0
			n++
		}
	}
}

// padding writes a mostly zero block with a little structure (section
// alignment, .bss-like areas).
func padding(dst []byte, r *rng, g *gen) {
	clear(dst)
	k := r.intn(len(dst) / 4)
	g.isa.code(dst[:k/16*16+16], r)
}
