package workload

import "encoding/binary"

// Kind is what an extent holds.
type Kind uint8

// Kinds of content. The names match docs/workload.md.
const (
	KindFree   Kind = iota // free space: zeros
	KindProse              // documentation text: Zipf words, punctuation, lines
	KindConfig             // configuration files: key = value lines, comments, paths
	KindLog                // log files: timestamped lines
	KindBinary             // executables and libraries: code, tables, symbol strings
	KindPacked             // already-compressed data (packages, .gz docs, images): random
	KindMeta               // filesystem metadata (inode tables): sparse records
	KindPage               // page file content (clones only): a mix of memory pages
	numKinds
)

var kindNames = [numKinds]string{"free", "prose", "config", "log", "binary", "packed", "meta", "page"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind?"
}

// gen holds the seed-derived tables shared by all blocks of one template.
type gen struct {
	v       *vocab // words
	phrases *vocab // common word sequences
	isa     *isa
}

func newGen(seed uint64) *gen {
	g := &gen{v: newWords(seed, 16000, 1.1), isa: newISA(seed)}
	r := rng{s: mix(seed, 0x706872)}
	items := make([][]byte, 6000)
	for i := range items {
		for j := range 2 + r.intn(4) {
			if j > 0 {
				items[i] = append(items[i], ' ')
			}
			items[i] = append(items[i], g.v.rand(r.next())...)
		}
	}
	g.phrases = newVocab(items, 1.05)
	return g
}

// fill writes the content of one block of kind k into dst (len BlockSize).
// seed identifies the image generation (template or clone) that wrote it.
func (g *gen) fill(dst []byte, k Kind, seed uint64, block int64) {
	r := rng{s: mix(seed, uint64(block)<<4|uint64(k))}
	switch k {
	case KindFree:
		clear(dst)
	case KindProse:
		g.prose(dst, &r)
	case KindConfig:
		g.config(dst, &r)
	case KindLog:
		g.log(dst, &r, block)
	case KindBinary:
		g.binary(dst, &r)
	case KindPacked:
		random(dst, &r)
	case KindMeta:
		meta(dst, &r, block)
	case KindPage:
		g.page(dst, &r, block)
	}
}

func random(dst []byte, r *rng) {
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		binary.LittleEndian.PutUint64(dst[i:], r.next())
	}
	for ; i < len(dst); i++ {
		dst[i] = byte(r.next())
	}
}

// prose writes wrapped text of Zipf-distributed words.
func (g *gen) prose(dst []byte, r *rng) {
	n, col := 0, 0
	for n < len(dst) {
		x := r.next()
		w := g.v.rand(x)
		if x>>56 < 90 {
			w = g.phrases.rand(x)
		}
		n += copy(dst[n:], w)
		col += len(w)
		var sep byte = ' '
		switch {
		case x>>40&63 == 0:
			n += copy(dst[n:], ".\n\n")
			col = 0
			continue
		case x>>40&15 == 1:
			n += copy(dst[n:], ".")
		case x>>40&15 == 2:
			n += copy(dst[n:], ",")
		}
		if col > 64+int(x>>50&15) {
			sep, col = '\n', 0
		}
		if n < len(dst) {
			dst[n] = sep
			n++
			col++
		}
	}
}

var configSeps = [...]string{": ", " = ", "="}

// config writes structured text: records of key/value lines in a fixed key
// order (package lists, status files, unit files), comments and paths.
func (g *gen) config(dst []byte, r *rng) {
	n := 0
	style := r.intn(len(configSeps))
	keys := 4 + r.intn(12)
	for n < len(dst) {
		x := r.next()
		if x&15 == 0 { // a comment line
			n += copy(dst[n:], "# ")
			n += copy(dst[n:], g.phrases.rand(x>>4))
			n += copy(dst[n:], "\n")
			continue
		}
		for k := range keys { // one record
			y := r.next()
			if y&7 == 0 {
				continue // optional field
			}
			n += copy(dst[n:], g.v.word(k*3+1))
			n += copy(dst[n:], configSeps[style])
			switch y >> 3 & 7 {
			case 0:
				n += putUint(dst[n:], y>>8%10000)
			case 1:
				n += copy(dst[n:], "/usr/share/")
				n += copy(dst[n:], g.v.rand(y>>8))
			case 2:
				n += putUint(dst[n:], y>>8&3)
				n += copy(dst[n:], ".")
				n += putUint(dst[n:], y>>10&31)
				n += copy(dst[n:], "-")
				n += putUint(dst[n:], y>>15&7)
			case 3, 4:
				n += copy(dst[n:], g.phrases.rand(y>>8))
			default:
				n += copy(dst[n:], g.v.rand(y>>8))
			}
			n += copy(dst[n:], "\n")
		}
		n += copy(dst[n:], "\n")
	}
}

// log writes syslog-like lines with a clock that advances with the block.
func (g *gen) log(dst []byte, r *rng, block int64) {
	n := 0
	t := uint64(block)*97 + 1_700_000_000
	host := g.v.word(int(uint64(block)>>10) % 64)
	for n < len(dst) {
		x := r.next()
		t += x & 3
		n += putClock(dst[n:], t)
		n += copy(dst[n:], " ")
		n += copy(dst[n:], host)
		n += copy(dst[n:], " ")
		svc := int(x >> 2 & 15)
		n += copy(dst[n:], g.v.word(svc))
		n += copy(dst[n:], "[")
		n += putUint(dst[n:], 300+uint64(svc)*37)
		n += copy(dst[n:], "]: ")
		n += copy(dst[n:], g.phrases.word(int(x>>8&255)))
		n += copy(dst[n:], " ")
		n += copy(dst[n:], g.v.rand(x>>16))
		if x>>30&3 == 0 {
			n += putUint(dst[n:], x>>32&0xffff)
		}
		n += copy(dst[n:], "\n")
	}
}

// putUint writes v in decimal and returns the bytes written (possibly cut).
func putUint(dst []byte, v uint64) int {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return copy(dst, b[i:])
}

// putClock writes "Mmm DD HH:MM:SS" for a unix time.
func putClock(dst []byte, t uint64) int {
	const months = "JanFebMarAprMayJunJulAugSepOctNovDec"
	var b [15]byte
	day := t / 86400
	m := day / 30 % 12
	copy(b[:], months[m*3:m*3+3])
	b[3] = ' '
	d := day%30 + 1
	b[4], b[5] = byte('0'+d/10), byte('0'+d%10)
	b[6] = ' '
	s := t % 86400
	for i, v := range [3]uint64{s / 3600, s / 60 % 60, s % 60} {
		b[7+i*3], b[8+i*3] = byte('0'+v/10), byte('0'+v%10)
		if i < 2 {
			b[9+i*3] = ':'
		}
	}
	return copy(dst, b[:])
}

// meta writes an inode-table block: 16 records of 256 bytes, most in use,
// each a few dozen bytes of fields and the rest zero.
func meta(dst []byte, r *rng, block int64) {
	clear(dst)
	for i := 0; i+256 <= len(dst); i += 256 {
		x := r.next()
		if x&1 == 0 {
			continue // unused inode
		}
		rec := dst[i : i+256]
		mode := uint16(0x81a4)
		if x&4 != 0 {
			mode = 0x41ed
		}
		binary.LittleEndian.PutUint16(rec[0:], mode)
		binary.LittleEndian.PutUint32(rec[4:], uint32(x>>8&0xfffff))
		ts := uint32(1_700_000_000 + block/64)
		for _, o := range []int{8, 12, 16} {
			binary.LittleEndian.PutUint32(rec[o:], ts)
		}
		binary.LittleEndian.PutUint16(rec[26:], 1)
		binary.LittleEndian.PutUint32(rec[28:], uint32(x>>28&0xff)*8)
		binary.LittleEndian.PutUint32(rec[32:], 0x80000)
		copy(rec[40:], []byte{0x0a, 0xf3, 1, 0, 4, 0})
		binary.LittleEndian.PutUint32(rec[52:], uint32(x>>36&0xff)+1)
		binary.LittleEndian.PutUint32(rec[60:], uint32(block*8+int64(i)))
		binary.LittleEndian.PutUint32(rec[100:], uint32(r.next()))
		binary.LittleEndian.PutUint16(rec[128:], 32)
	}
}

// page writes one page of a page file: zero, code, text or random.
func (g *gen) page(dst []byte, r *rng, block int64) {
	switch x := r.intn(100); {
	case x < 35:
		clear(dst)
	case x < 60:
		g.binary(dst, r)
	case x < 75:
		g.prose(dst, r)
	case x < 80:
		meta(dst, r, block)
	default:
		random(dst, r)
	}
}
