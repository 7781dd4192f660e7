package dedupe

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PayloadCheck is the cheap check carried in every stream: CRC32C of the
// payload. Pending.Payload verifies it; the caller still verifies the
// file's SHA-256.
func PayloadCheck(payload []byte) uint32 { return crc32.Checksum(payload, castagnoli) }

// EncoderConfig configures an Encoder. The zero value is usable.
type EncoderConfig struct {
	// Params are the chunking parameters; zero fields mean defaults.
	Params Params
	// Peer is the index of what the peer holds, updated by every Encode.
	// nil means a fresh NewPeerIndex(0).
	Peer *PeerIndex
	// Level is the initial literal compression level; 0 means DefaultLevel.
	Level Level
	// Local is the sender's own chunk store (optional). With it, literals
	// are compressed against the chunks they probably replace (the
	// successors, in Local, of the chunk before them), which the peer
	// holds: a rewritten block inside a known chunk costs little more than
	// its new bytes. Every encoded payload's chunks are added to it.
	Local *Store
	// Track keeps, for every payload not yet settled, the chunks decoding
	// it changes at the peer, and lists in EncodeStats.After the unsettled
	// payloads a payload relies on. The caller must then Settle every
	// payload once the peer acknowledged it or it was abandoned.
	Track bool
}

// Encoder turns payloads into op streams against its peer index. Safe for
// concurrent use; files encoded concurrently update the index in the order
// their Encode calls take its lock.
type Encoder struct {
	p     Params
	peer  *PeerIndex
	local *Store
	hist  history
	level atomic.Int32
	split sync.Pool // *splitter

	// The payloads not yet settled (see Settle), under peer.mu: gen
	// numbers payloads in the order decide took the lock, touch maps a
	// chunk to the latest unsettled payload that added or linked it, and
	// touched lists each unsettled payload's chunks (with Track only).
	track   bool
	gen     uint64
	touch   map[uint64]uint64
	touched map[uint64][]uint64
}

// NewEncoder validates cfg and returns an Encoder.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	p, err := cfg.Params.Normalize()
	if err != nil {
		return nil, err
	}
	if err := cfg.Level.normalize().validate(); err != nil {
		return nil, err
	}
	if cfg.Peer == nil {
		cfg.Peer = NewPeerIndex(0)
	}
	e := &Encoder{p: p, peer: cfg.Peer, local: cfg.Local, track: cfg.Track, touch: map[uint64]uint64{}, touched: map[uint64][]uint64{}}
	e.level.Store(int32(cfg.Level.normalize()))
	e.split.New = func() any { return newSplitter(p) }
	return e, nil
}

// Params returns the normalized parameters.
func (e *Encoder) Params() Params { return e.p }

// Peer returns the peer index the encoder updates.
func (e *Encoder) Peer() *PeerIndex { return e.peer }

// Level returns the current literal compression level.
func (e *Encoder) Level() Level { return Level(e.level.Load()) }

// SetLevel changes the level for the next Encode/Answer calls; 0 means
// DefaultLevel, an unknown level is ignored with an error.
func (e *Encoder) SetLevel(l Level) error {
	l = l.normalize()
	if err := l.validate(); err != nil {
		return err
	}
	e.level.Store(int32(l))
	return nil
}

// EncodeStats describes one encoded payload.
type EncodeStats struct {
	Payload      int // payload bytes in
	Wire         int // stream bytes out
	Chunks       int // chunks cut (zero runs excluded)
	Literals     int // literal ops
	LiteralBytes int // raw bytes sent as literals (before zstd)
	Refs         int // single-chunk reference ops
	Runs         int // run reference ops
	RunChunks    int // chunks covered by run references
	RefBytes     int // payload bytes covered by references, runs and edges
	Edges        int // head/tail ops (a payload starting or ending inside a known chunk)
	DictBytes    int // bytes of known chunks used as the literals' zstd dictionary
	ZeroRuns     int // zero-run ops
	ZeroBytes    int // payload bytes covered by zero runs
	// Gen numbers this payload among the encoder's, for Settle.
	Gen uint64
	// After lists the payloads not yet settled whose chunks or links this
	// one relies on (as references, runs, edges or dictionary bases): the
	// peer can decode it only once it holds theirs. Empty, with Track, the
	// peer can decode it before payloads encoded earlier (without Track it
	// says nothing).
	After []uint64
}

// op is one decided operation over the payload.
type op struct {
	kind  byte
	off   int
	n     int // payload bytes
	count int // chunks (run)
	first int // index of the first chunk in chunks (ref/run/literal)
}

// Encode appends the op stream of payload to dst. The encoding is
// deterministic for a given peer index state, params and level. It updates
// the peer index optimistically: every chunk of payload is believed held by
// the peer from now on (a miss later corrects it).
func (e *Encoder) Encode(dst, payload []byte) ([]byte, EncodeStats, error) {
	st := EncodeStats{Payload: len(payload)}
	s := e.split.Get().(*splitter)
	pieces, err := s.split(nil, payload)
	e.split.Put(s)
	if err != nil {
		return dst, st, err
	}
	fps := make([]Fingerprint, len(pieces))
	for i, pc := range pieces {
		if !pc.zero {
			fps[i] = Sum(payload[pc.off : pc.off+pc.n])
		}
	}
	ops := e.decide(pieces, fps, &st)

	var lits []byte
	if st.LiteralBytes > 0 {
		lits = make([]byte, 0, st.LiteralBytes)
		for _, o := range ops {
			if o.kind == opLiteral {
				lits = append(lits, payload[o.off:o.off+o.n]...)
			}
		}
	}
	var (
		bases []Fingerprint
		dict  []byte
	)
	novel := st.LiteralBytes >= len(payload)/4 // mostly new data, not a few rewritten blocks
	level := e.Level()
	if e.local != nil {
		if st.LiteralBytes > 0 {
			room := 0
			if novel {
				room = historyRoom(level)
			}
			bases, dict = e.pickBases(ops, fps, room)
			if e.track {
				e.peer.mu.Lock()
				st.After = e.reliesLocked(st.After, bases, st.Gen)
				e.peer.mu.Unlock()
			}
		}
		e.learn(payload, pieces, fps)
		e.hist.add(ops, fps)
	}
	st.DictBytes = len(dict)
	if level == LevelFastest && len(dict) > 0 && !novel {
		// zstd's fastest level barely matches into a dictionary (a 1%
		// clone cost 2.5x more); such payloads have few literals, so the
		// default level costs little time here.
		level = LevelDefault
	}
	z, err := compressDict(lits, dict, level)
	if err != nil {
		return dst, st, err
	}

	start := len(dst)
	dst = appendHeader(dst, magicStream)
	dst = binary.BigEndian.AppendUint64(dst, e.p.Hash())
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, PayloadCheck(payload))
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	for _, o := range ops {
		dst = appendOp(dst, o, payload, fps)
	}
	dst = e.appendBases(dst, bases, fps)
	dst = binary.AppendUvarint(dst, uint64(len(z)))
	dst = append(dst, z...)
	st.Wire = len(dst) - start
	return dst, st, nil
}

// decide turns pieces into ops against the peer index, updating it.
func (e *Encoder) decide(pieces []piece, fps []Fingerprint, st *EncodeStats) []op {
	ops := make([]op, 0, 16)
	x := e.peer
	x.mu.Lock()
	defer x.mu.Unlock()
	e.trackLocked(fps, st)
	// Edges first, against the index as it was before this payload.
	headN := e.headLocked(pieces, fps)
	tailN := e.tailLocked(pieces, fps, headN)
	if headN > 0 {
		end := pieces[headN].off
		ops = append(ops, op{kind: opHead, n: end, first: headN})
		st.Edges++
		st.RefBytes += end
	}
	var prev uint64 // short fingerprint of the previous chunk, 0 after a zero run
	for i := headN; i < len(pieces)-tailN; i++ {
		pc := pieces[i]
		if pc.zero {
			ops = append(ops, op{kind: opZero, off: pc.off, n: pc.n})
			st.ZeroRuns++
			st.ZeroBytes += pc.n
			prev = 0
			continue
		}
		st.Chunks++
		s := fps[i].short()
		known := x.knownLocked(s)
		last := len(ops) - 1
		switch {
		case known && prev != 0 && last >= 0 && (ops[last].kind == opRef || ops[last].kind == opRun) &&
			ops[last].count < MaxRunChunks && x.succLocked(prev) == s:
			ops[last].kind = opRun
			ops[last].count++
			ops[last].n += pc.n
		case known:
			ops = append(ops, op{kind: opRef, off: pc.off, n: pc.n, count: 1, first: i})
		default:
			ops = append(ops, op{kind: opLiteral, off: pc.off, n: pc.n, count: 1, first: i})
		}
		x.addLocked(s, pc.n)
		if prev != 0 {
			x.linkLocked(prev, s)
		}
		prev = s
	}
	if tailN > 0 {
		off := pieces[len(pieces)-tailN].off
		n := pieces[len(pieces)-1].off + pieces[len(pieces)-1].n - off
		ops = append(ops, op{kind: opTail, off: off, n: n})
		st.Edges++
		st.RefBytes += n
	}
	e.touchLocked(ops, fps)
	for _, o := range ops {
		switch o.kind {
		case opLiteral:
			st.Literals++
			st.LiteralBytes += o.n
		case opRef:
			st.Refs++
			st.RefBytes += o.n
		case opRun:
			st.Runs++
			st.RunChunks += o.count
			st.RefBytes += o.n
		}
	}
	return ops
}

// trackLocked numbers the payload and lists in st.After the unsettled
// payloads that touched any of its chunks (x.mu held, before decide
// changes the index).
func (e *Encoder) trackLocked(fps []Fingerprint, st *EncodeStats) {
	e.gen++
	st.Gen = e.gen
	if e.track {
		st.After = e.reliesLocked(st.After, fps, st.Gen)
	}
}

// touchLocked records the chunks whose state at the peer decoding this
// payload changes, as its own (x.mu held, after decide): its literals
// (stored there) and the chunks on either side of each, whose links
// decoding it may set (a link is set only where none was; links between
// chunks the peer held already are rarely new, and a wrong guess costs a
// miss, not data). A reference changes nothing at the peer: payloads
// relying only on references to chunks settled payloads brought need not
// wait for the ones in flight.
func (e *Encoder) touchLocked(ops []op, fps []Fingerprint) {
	if !e.track {
		return
	}
	shorts := []uint64{}
	touch := func(i int) {
		if i >= 0 && i < len(fps) && fps[i] != (Fingerprint{}) { // zero runs have none
			s := fps[i].short()
			if e.touch[s] != e.gen {
				e.touch[s] = e.gen
				shorts = append(shorts, s)
			}
		}
	}
	for _, o := range ops {
		if o.kind == opLiteral {
			touch(o.first - 1)
			touch(o.first)
			touch(o.first + 1)
		}
	}
	e.touched[e.gen] = shorts
}

// reliesLocked appends to after the unsettled payloads other than self
// that touched any of fps, each once (x.mu held). Payloads encoded
// concurrently may have taken later numbers meanwhile.
func (e *Encoder) reliesLocked(after []uint64, fps []Fingerprint, self uint64) []uint64 {
	for _, fp := range fps {
		if g, ok := e.touch[fp.short()]; ok && g != self && !slices.Contains(after, g) {
			after = append(after, g)
		}
	}
	return after
}

// Settle says the peer holds payload gen's chunks (it was acknowledged),
// or never will from it (it was abandoned: its chunks are then misses, as
// evicted ones are): payloads encoded later no longer wait for it.
// Settling a payload that others relied on is safe once it was decoded,
// which a peer decoding them after it already guarantees.
func (e *Encoder) Settle(gen uint64) {
	e.peer.mu.Lock()
	defer e.peer.mu.Unlock()
	for _, s := range e.touched[gen] {
		if e.touch[s] == gen {
			delete(e.touch, s)
		}
	}
	delete(e.touched, gen)
}

// Unsettled returns how many payloads are not settled (with Track).
func (e *Encoder) Unsettled() int {
	e.peer.mu.Lock()
	defer e.peer.mu.Unlock()
	return len(e.touched)
}

// headLocked returns how many leading pieces, all unknown to the peer and
// together at most MaxSize bytes, come before the first known chunk W
// that has a predecessor: the payload then probably starts inside pred(W)
// (a journal file boundary cut that chunk), and the head is sent as its
// suffix. The receiver checks; a wrong guess is a miss.
func (e *Encoder) headLocked(pieces []piece, fps []Fingerprint) int {
	size := 0
	for n, pc := range pieces {
		if pc.zero {
			return 0
		}
		if e.peer.knownLocked(fps[n].short()) {
			if n > 0 && e.peer.hasPredLocked(fps[n].short()) {
				return n
			}
			return 0
		}
		if size += pc.n; size > e.p.MaxSize {
			return 0
		}
	}
	return 0
}

// tailLocked is headLocked's mirror: trailing unknown pieces after a known
// chunk X with a successor are sent as a prefix of succ(X).
func (e *Encoder) tailLocked(pieces []piece, fps []Fingerprint, headN int) int {
	size := 0
	for i := len(pieces) - 1; i > headN; i-- {
		if pieces[i].zero || pieces[i-1].zero {
			return 0
		}
		if e.peer.knownLocked(fps[i].short()) {
			return 0
		}
		if size += pieces[i].n; size > e.p.MaxSize {
			return 0
		}
		if e.peer.knownLocked(fps[i-1].short()) {
			if e.peer.succLocked(fps[i-1].short()) != 0 {
				return len(pieces) - i
			}
			return 0
		}
	}
	return 0
}

// appendBases writes the base list. Bases that followed each other when
// first seen (as the peer index believes: the rule of run references) go
// as one entry: the chunk count, the first fingerprint and a run check, so
// a dictionary of recent literals costs a few entries, not 32 bytes a
// chunk. A wrong belief fails the receiver's check: its literals become
// misses, recovered at the cost of bytes. The links of chunks of this
// payload (fps) are not used: decide may have just set them, and the
// receiver rebuilds the dictionary before it stores this payload's links.
func (e *Encoder) appendBases(dst []byte, bases, fps []Fingerprint) []byte {
	var ends []int // end (exclusive) of each entry
	var here map[uint64]bool
	if len(bases) > 1 {
		here = make(map[uint64]bool, len(fps))
		for _, fp := range fps {
			here[fp.short()] = true
		}
	}
	x := e.peer
	x.mu.Lock()
	for i := 0; i < len(bases); {
		j := i + 1
		for j < len(bases) {
			prev := bases[j-1].short()
			s := x.succLocked(prev)
			if s == 0 || s != bases[j].short() || here[prev] {
				break
			}
			j++
		}
		ends = append(ends, j)
		i = j
	}
	x.mu.Unlock()
	dst = binary.AppendUvarint(dst, uint64(len(ends)))
	start := 0
	for _, end := range ends {
		dst = binary.AppendUvarint(dst, uint64(end-start))
		dst = append(dst, bases[start][:]...)
		if end-start >= 2 {
			c := runCheck(bases[start:end])
			dst = append(dst, c[:]...)
		}
		start = end
	}
	return dst
}

// runCheck is the check value of a run: the first 16 bytes of SHA-256 over
// the fingerprints of its chunks in order.
func runCheck(fps []Fingerprint) [runCheckLen]byte {
	h := sha256.New()
	for i := range fps {
		h.Write(fps[i][:])
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return [runCheckLen]byte(sum[:runCheckLen])
}

// edgeCheck is the check value of a head/tail op: the first 8 bytes of the
// SHA-256 of its bytes.
func edgeCheck(b []byte) [edgeCheckLen]byte {
	s := Sum(b)
	return [edgeCheckLen]byte(s[:edgeCheckLen])
}

func appendOp(dst []byte, o op, payload []byte, fps []Fingerprint) []byte {
	dst = append(dst, o.kind)
	switch o.kind {
	case opLiteral, opZero:
		dst = binary.AppendUvarint(dst, uint64(o.n))
	case opRef:
		dst = binary.AppendUvarint(dst, uint64(o.n))
		dst = append(dst, fps[o.first][:]...)
	case opRun:
		dst = binary.AppendUvarint(dst, uint64(o.count))
		dst = binary.AppendUvarint(dst, uint64(o.n))
		dst = append(dst, fps[o.first][:]...)
		c := runCheck(fps[o.first : o.first+o.count])
		dst = append(dst, c[:]...)
	case opHead:
		dst = binary.AppendUvarint(dst, uint64(o.n))
		dst = append(dst, fps[o.first][:]...)
		c := edgeCheck(payload[:o.n])
		dst = append(dst, c[:]...)
	case opTail:
		dst = binary.AppendUvarint(dst, uint64(o.n))
		c := edgeCheck(payload[o.off : o.off+o.n])
		dst = append(dst, c[:]...)
	}
	return dst
}

// compress is the literal stream: one zstd frame over all literals of a
// file (history spans chunks), empty when there are none.
func compress(lits []byte, l Level) ([]byte, error) {
	if len(lits) == 0 {
		return nil, nil
	}
	if l == LevelMax {
		return compressMax(lits, nil)
	}
	var out []byte
	err := withEncoder(l, nil, func(z *zstd.Encoder) {
		out = z.EncodeAll(lits, make([]byte, 0, len(lits)/2+64))
	})
	return out, err
}

// errf wraps a sentinel with context.
func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
