package dedupe

import (
	"encoding/binary"
	"fmt"
)

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	// Params are the chunking parameters; zero fields mean defaults. They
	// must equal the encoder's (the stream carries Params.Hash).
	Params Params
	// Store resolves references and learns every chunk decoded. nil means
	// a private memory-only store of DefaultStoreBytes.
	Store *Store
	// MaxPayload is the largest payload accepted; 0 means DefaultMaxPayload.
	MaxPayload int64
}

// Decoder rebuilds payloads from op streams with its store. Safe for
// concurrent use.
type Decoder struct {
	p          Params
	hash       uint64
	store      *Store
	maxPayload int64
}

// NewDecoder validates cfg and returns a Decoder.
func NewDecoder(cfg DecoderConfig) (*Decoder, error) {
	p, err := cfg.Params.Normalize()
	if err != nil {
		return nil, err
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.MaxPayload < 0 || cfg.MaxPayload > 1<<40 {
		return nil, fmt.Errorf("dedupe: max payload %d out of range", cfg.MaxPayload)
	}
	if cfg.Store == nil {
		if cfg.Store, err = OpenStore(StoreConfig{}); err != nil {
			return nil, err
		}
	}
	return &Decoder{p: p, hash: p.Hash(), store: cfg.Store, maxPayload: cfg.MaxPayload}, nil
}

// Store returns the decoder's store.
func (d *Decoder) Store() *Store { return d.store }

// dop is one parsed op with its place in the payload.
type dop struct {
	kind  byte
	off   int
	n     int
	count int
	fp    Fingerprint
	check [runCheckLen]byte
	// After execution: fingerprints of the first and last chunk, when known.
	head, tail   Fingerprint
	known, valid bool // valid: resolved; known: head/tail set
}

// DecodeStats describes one decoded payload.
type DecodeStats struct {
	Payload   int // payload bytes
	Wire      int // stream bytes in (answers included after Resolve)
	Ops       int
	Misses    int // ops unresolved after Decode
	MissBytes int // payload bytes they cover
}

// Decode parses and executes stream. References the store cannot resolve
// are left as misses in the returned Pending; a malformed or hostile stream
// is an error wrapping ErrCorrupt (ErrMismatch for another params' stream,
// ErrTooLarge for a payload above MaxPayload).
func (d *Decoder) Decode(stream []byte) (*Pending, error) {
	r := reader{b: stream, what: "dedupe stream"}
	r.header(magicStream)
	if h := r.u64(); r.err == nil && h != d.hash {
		return nil, errf(ErrMismatch, "stream params hash %016x, want %016x (%s)", h, d.hash, d.p.ID())
	}
	size := r.uvarint("payload length", 1<<62)
	if r.err == nil && size > uint64(d.maxPayload) {
		return nil, errf(ErrTooLarge, "payload length %d above limit %d", size, d.maxPayload)
	}
	check := r.u32()
	ops, litTotal := d.parseOps(&r, int(size))
	bases := parseBases(&r)
	zlen := r.uvarint("literal stream length", uint64(len(stream)))
	z := r.bytes(int(zlen))
	if err := r.end(); err != nil {
		return nil, err
	}
	dict, ok, err := d.dictionary(bases)
	if err != nil {
		return nil, err
	}
	var lits []byte
	if ok {
		if lits, err = unzstdDict(z, dict, litTotal, "dedupe stream"); err != nil {
			return nil, err
		}
	}
	p := &Pending{d: d, out: make([]byte, size), ops: ops, check: check}
	p.stats = DecodeStats{Payload: int(size), Wire: len(stream), Ops: len(ops)}
	p.execute(lits, ok)
	return p, nil
}

// StreamSize returns the length of the encoded stream at the start of b
// (the encoding is self-delimiting) without decoding it; b may continue
// with other bytes. Malformed input is an error wrapping ErrCorrupt.
func (d *Decoder) StreamSize(b []byte) (int, error) {
	r := reader{b: b, what: "dedupe stream"}
	r.header(magicStream)
	r.u64()
	size := r.uvarint("payload length", uint64(d.maxPayload))
	r.u32()
	d.parseOps(&r, int(size))
	parseBases(&r)
	r.bytes(int(r.uvarint("literal stream length", uint64(len(b)))))
	return r.pos, r.err
}

// baseRun is an entry of the base list: count chunks that followed each
// other when first seen, from fp (check set when count ≥ 2).
type baseRun struct {
	count int
	fp    Fingerprint
	check [runCheckLen]byte
}

// parseBases reads the base list: an entry count, then per entry a chunk
// count, the first fingerprint and, for a count ≥ 2, the run check. The
// entries hold at most MaxBases chunks in all.
func parseBases(r *reader) []baseRun {
	ne := r.uvarint("base entry count", MaxBases)
	bases := make([]baseRun, 0, ne)
	left := uint64(MaxBases)
	for i := uint64(0); i < ne && r.err == nil; i++ {
		b := baseRun{count: int(r.uvarint("base run length", left))}
		if r.err == nil && b.count == 0 {
			r.fail("base entry of 0 chunks")
		}
		left -= uint64(b.count)
		b.fp = r.fingerprint()
		if b.count >= 2 {
			copy(b.check[:], r.bytes(runCheckLen))
		}
		bases = append(bases, b)
	}
	return bases
}

// dictionary rebuilds the literal stream's dictionary from the bases in
// the store, following successor links through runs. false when a chunk
// is missing or a run does not match its check: the literals then become
// misses. A run is checked (fingerprints along the successor links) before
// its bytes are fetched, so only bases the sender really named count
// against MaxDict: a run over other chunks is a miss, not corruption.
func (d *Decoder) dictionary(bases []baseRun) ([]byte, bool, error) {
	var dict []byte
	for _, b := range bases {
		fps := make([]Fingerprint, 0, b.count)
		cur := b.fp
		for k := 0; k < b.count; k++ {
			if k > 0 {
				next, ok := d.store.Successor(cur)
				if !ok {
					return nil, false, nil
				}
				cur = next
			}
			fps = append(fps, cur)
		}
		if b.count >= 2 && runCheck(fps) != b.check {
			return nil, false, nil
		}
		for _, fp := range fps {
			var ok bool
			if dict, ok = d.store.Get(dict, fp); !ok {
				return nil, false, nil
			}
			if len(dict) > MaxDict {
				return nil, false, errf(ErrCorrupt, "dedupe stream: bases hold over %d bytes", MaxDict)
			}
		}
	}
	return dict, true, nil
}

// parseOps reads the op list; ops must tile exactly size payload bytes.
func (d *Decoder) parseOps(r *reader, size int) ([]dop, int) {
	n := r.uvarint("op count", uint64(min(size, len(r.b)/2)))
	if r.err != nil {
		return nil, 0
	}
	ops := make([]dop, 0, n)
	off, litTotal := 0, 0
	maxChunk := uint64(d.p.MaxSize)
	for i := uint64(0); i < n && r.err == nil; i++ {
		o := dop{kind: r.byte(), off: off, count: 1}
		left := uint64(size - off)
		switch o.kind {
		case opLiteral:
			o.n = int(r.uvarint("literal length", min(maxChunk, left)))
			litTotal += o.n
		case opRef:
			o.n = int(r.uvarint("reference length", min(maxChunk, left)))
			o.fp = r.fingerprint()
		case opRun:
			o.count = int(r.uvarint("run count", MaxRunChunks))
			o.n = int(r.uvarint("run length", min(uint64(o.count)*maxChunk, left)))
			o.fp = r.fingerprint()
			copy(o.check[:], r.bytes(runCheckLen))
			if r.err == nil && (o.count < 2 || o.n < o.count) {
				r.fail("run of %d chunks over %d bytes", o.count, o.n)
			}
		case opZero:
			o.n = int(r.uvarint("zero run length", left))
		case opHead, opTail:
			if (o.kind == opHead && i != 0) || (o.kind == opTail && i != n-1) {
				r.fail("op 0x%02x at position %d of %d", o.kind, i, n)
			}
			o.n = int(r.uvarint("edge length", min(maxChunk, left)))
			if o.kind == opHead {
				o.fp = r.fingerprint()
			}
			copy(o.check[:], r.bytes(edgeCheckLen))
		default:
			r.fail("unknown op 0x%02x", o.kind)
		}
		if r.err == nil && o.n == 0 {
			r.fail("empty op %d", i)
		}
		off += o.n
		ops = append(ops, o)
	}
	if r.err == nil && off != size {
		r.fail("ops cover %d bytes, payload has %d", off, size)
	}
	return ops, litTotal
}

// Pending is a payload being rebuilt: complete, or waiting for the
// answers to its misses.
type Pending struct {
	d     *Decoder
	out   []byte
	ops   []dop
	check uint32
	stats DecodeStats
}

// Miss is an unresolved reference: a payload range the sender must send as
// literals.
type Miss struct {
	Offset, Length int
	Fingerprint    Fingerprint // first chunk of the range
	Chunks         int         // chunks in the range (1 for a reference)
}

// execute fills the payload op by op, in order, using earlier chunks of the
// same payload first and the store second.
func (p *Pending) execute(lits []byte, haveLits bool) {
	local := make(map[Fingerprint]span, len(p.ops))
	s := p.d.store
	var prev Fingerprint
	hasPrev := false
	for i := range p.ops {
		o := &p.ops[i]
		dst := p.out[o.off : o.off+o.n]
		switch o.kind {
		case opZero:
			o.valid = true
			hasPrev = false
			continue
		case opLiteral:
			if !haveLits {
				break
			}
			copy(dst, lits[:o.n])
			lits = lits[o.n:]
			o.head = Sum(dst)
			o.tail, o.known, o.valid = o.head, true, true
			s.Put(o.head, dst)
		case opRef:
			o.head, o.tail, o.known = o.fp, o.fp, true
			n, ok := p.fetch(local, o.fp, dst)
			o.valid = ok && n == o.n
		case opRun:
			o.head = o.fp
			o.tail, o.valid = p.expand(local, o, dst)
			o.known = o.valid
		case opHead:
			if y, ok := s.Predecessor(o.fp); ok {
				o.valid = p.edge(y, dst, true, o.check)
			}
		case opTail:
			if hasPrev {
				if y, ok := s.Successor(prev); ok {
					o.valid = p.edge(y, dst, false, o.check)
				}
			}
		}
		if o.valid && (o.kind == opLiteral || o.kind == opRef) {
			local[o.head] = span{o.off, o.n}
		}
		if hasPrev && o.known {
			s.Link(prev, o.head)
		}
		prev, hasPrev = o.tail, o.known
		if !o.valid {
			p.stats.Misses++
			p.stats.MissBytes += o.n
		}
	}
}

// edge fills dst with the last (head) or first (tail) len(dst) bytes of
// chunk y when they match the op's check. Edges are fragments: they are
// neither stored nor linked.
func (p *Pending) edge(y Fingerprint, dst []byte, head bool, check [runCheckLen]byte) bool {
	data, ok := p.d.store.Get(nil, y)
	if !ok || len(data) < len(dst) {
		return false
	}
	if head {
		data = data[len(data)-len(dst):]
	} else {
		data = data[:len(dst)]
	}
	if c := edgeCheck(data); [edgeCheckLen]byte(check[:edgeCheckLen]) != c {
		return false
	}
	copy(dst, data)
	return true
}

// span is where a chunk already sits in the payload being rebuilt.
type span struct{ off, n int }

// fetch copies chunk fp into the start of dst, from this payload or the
// store, and returns its length. A chunk longer than dst is a miss.
func (p *Pending) fetch(local map[Fingerprint]span, fp Fingerprint, dst []byte) (int, bool) {
	if len(dst) == 0 { // a run claiming more chunks than its bytes hold
		return 0, false
	}
	if sp, ok := local[fp]; ok && sp.n <= len(dst) {
		return copy(dst, p.out[sp.off:sp.off+sp.n]), true
	}
	got, ok := p.d.store.use(dst[:0:len(dst)], fp)
	if !ok || len(got) == 0 || &got[0] != &dst[0] {
		return 0, false // absent, or longer than dst (reallocated)
	}
	return len(got), true
}

// expand resolves a run by following successor links from its first chunk,
// and returns the fingerprint of its last chunk.
func (p *Pending) expand(local map[Fingerprint]span, o *dop, dst []byte) (Fingerprint, bool) {
	s := p.d.store
	fps := make([]Fingerprint, 0, min(o.count, 1024))
	cur, pos := o.fp, 0
	for k := 0; k < o.count; k++ {
		if k > 0 {
			next, ok := s.Successor(cur)
			if !ok {
				return cur, false
			}
			cur = next
		}
		n, ok := p.fetch(local, cur, dst[pos:])
		if !ok {
			return cur, false
		}
		local[cur] = span{o.off + pos, n}
		pos += n
		fps = append(fps, cur)
	}
	if pos != len(dst) || runCheck(fps) != o.check {
		return cur, false
	}
	return cur, true
}

// Complete reports whether every op is resolved.
func (p *Pending) Complete() bool { return p.stats.Misses == 0 }

// Stats describes the decode so far.
func (p *Pending) Stats() DecodeStats { return p.stats }

// Misses lists the unresolved ranges in payload order.
func (p *Pending) Misses() []Miss {
	var ms []Miss
	for _, o := range p.ops {
		if !o.valid {
			ms = append(ms, Miss{Offset: o.off, Length: o.n, Fingerprint: o.fp, Chunks: o.count})
		}
	}
	return ms
}

// AppendMissList appends the miss list to send to the encoder: the
// decoder's store epoch (so the sender can drop a stale peer index), the
// payload length and the missing ranges.
func (p *Pending) AppendMissList(dst []byte) []byte {
	dst = appendHeader(dst, magicMisses)
	dst = binary.BigEndian.AppendUint64(dst, p.d.store.Epoch())
	dst = binary.AppendUvarint(dst, uint64(len(p.out)))
	ms := p.Misses()
	dst = binary.AppendUvarint(dst, uint64(len(ms)))
	end := 0
	for _, m := range ms {
		dst = binary.AppendUvarint(dst, uint64(m.Offset-end))
		dst = binary.AppendUvarint(dst, uint64(m.Length))
		end = m.Offset + m.Length
	}
	return dst
}

// Payload returns the rebuilt payload once complete (ErrPending before),
// after checking its CRC32C against the stream's (ErrMismatch).
func (p *Pending) Payload() ([]byte, error) {
	if !p.Complete() {
		return nil, errf(ErrPending, "%d ranges (%d bytes) unresolved", p.stats.Misses, p.stats.MissBytes)
	}
	if c := PayloadCheck(p.out); c != p.check {
		return nil, errf(ErrMismatch, "payload CRC32C %08x, stream says %08x", c, p.check)
	}
	return p.out, nil
}
