package dedupe

import (
	"encoding/binary"
)

// Range is a payload byte range.
type Range struct{ Offset, Length int }

// ParseMissList validates a miss list against the payload length the
// encoder holds and returns the peer's store epoch and the ranges.
func ParseMissList(b []byte, payloadLen int) (epoch uint64, ranges []Range, err error) {
	r := reader{b: b, what: "miss list"}
	r.header(magicMisses)
	epoch = r.u64()
	size := r.uvarint("payload length", 1<<62)
	if r.err == nil && size != uint64(payloadLen) {
		return 0, nil, errf(ErrMismatch, "miss list is for a %d-byte payload, have %d bytes", size, payloadLen)
	}
	n := r.uvarint("miss count", uint64(min(payloadLen, len(b)/2)))
	if r.err == nil {
		ranges = make([]Range, 0, n)
	}
	end := 0
	for i := uint64(0); i < n && r.err == nil; i++ {
		gap := r.uvarint("miss gap", uint64(payloadLen-end))
		length := r.uvarint("miss length", uint64(payloadLen-end)-gap)
		if r.err == nil && length == 0 {
			r.fail("empty miss %d", i)
		}
		ranges = append(ranges, Range{Offset: end + int(gap), Length: int(length)})
		end += int(gap + length)
	}
	if err := r.end(); err != nil {
		return 0, nil, err
	}
	return epoch, ranges, nil
}

// Answer appends the answer to a miss list: for each requested range its
// chunk lengths and, in one zstd stream, its bytes taken from payload (the
// payload that was encoded). When the miss list carries a store epoch other
// than the peer index's, the peer restarted cold or was wiped: the peer
// index is reset to it. The answered chunks stay in the peer index.
func (e *Encoder) Answer(dst, payload, missList []byte) ([]byte, error) {
	epoch, ranges, err := ParseMissList(missList, len(payload))
	if err != nil {
		return dst, err
	}
	e.peer.SetEpoch(epoch)
	s := e.split.Get().(*splitter)
	defer e.split.Put(s)
	var (
		head   []byte
		lits   []byte
		pieces []piece
		end    int
		fps    []Fingerprint
	)
	head = binary.AppendUvarint(head, uint64(len(ranges)))
	for _, rg := range ranges {
		data := payload[rg.Offset : rg.Offset+rg.Length]
		// A range starts at a chunk boundary and holds no long zero run, so
		// chunking it alone cuts the same chunks as the original encode.
		if pieces, err = s.chunkSegment(pieces[:0], data, 0, len(data)); err != nil {
			return dst, err
		}
		head = binary.AppendUvarint(head, uint64(rg.Offset-end))
		head = binary.AppendUvarint(head, uint64(rg.Length))
		head = binary.AppendUvarint(head, uint64(len(pieces)))
		for _, pc := range pieces {
			head = binary.AppendUvarint(head, uint64(pc.n))
			fps = append(fps, Sum(data[pc.off:pc.off+pc.n]))
		}
		lits = append(lits, data...)
		end = rg.Offset + rg.Length
	}
	e.relearn(fps)
	// The peer waits for the answer: never at max (libzstd -19, ~2 MB/s).
	z, err := compress(lits, min(e.Level(), LevelBest))
	if err != nil {
		return dst, err
	}
	dst = appendHeader(dst, magicAnswer)
	dst = append(dst, head...)
	dst = binary.AppendUvarint(dst, uint64(len(z)))
	return append(dst, z...), nil
}

// relearn marks answered chunks as held by the peer (again, e.g. after an
// epoch reset).
func (e *Encoder) relearn(fps []Fingerprint) {
	x := e.peer
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, fp := range fps {
		x.addLocked(fp.short(), DefaultAvgSize)
	}
}

// Resolve applies an answer from Encoder.Answer to the misses. Each
// answered range must match its miss exactly (offset, length, first
// fingerprint, run check) or Resolve fails with ErrMismatch; malformed
// input fails with ErrCorrupt. The chunks answered are added to the store.
func (p *Pending) Resolve(answer []byte) error {
	ms := p.missOps()
	r := reader{b: answer, what: "answer"}
	r.header(magicAnswer)
	n := r.uvarint("range count", uint64(len(ms)))
	if r.err == nil && int(n) != len(ms) {
		r.fail("%d ranges answered, %d missing", n, len(ms))
	}
	lens := make([][]int, len(ms))
	total, end := 0, 0
	for i := 0; i < len(ms) && r.err == nil; i++ {
		o := &p.ops[ms[i]]
		gap := r.uvarint("range gap", uint64(len(p.out)))
		length := r.uvarint("range length", uint64(len(p.out)))
		if r.err == nil && (end+int(gap) != o.off || int(length) != o.n) {
			r.fail("range %d is [%d,+%d), miss is [%d,+%d)", i, end+int(gap), length, o.off, o.n)
		}
		count := r.uvarint("chunk count", uint64(o.n))
		if r.err == nil && int(count) != o.count && o.kind != opHead && o.kind != opTail {
			r.fail("range %d has %d chunks, miss has %d", i, count, o.count)
		}
		sum := 0
		for k := uint64(0); k < count && r.err == nil; k++ {
			l := int(r.uvarint("chunk length", uint64(min(p.d.p.MaxSize, o.n-sum))))
			if r.err == nil && l == 0 {
				r.fail("empty chunk in range %d", i)
			}
			lens[i] = append(lens[i], l)
			sum += l
		}
		if r.err == nil && sum != o.n {
			r.fail("range %d chunks sum to %d, want %d", i, sum, o.n)
		}
		total += o.n
		end = o.off + o.n
	}
	zlen := r.uvarint("literal stream length", uint64(len(answer)))
	z := r.bytes(int(zlen))
	if err := r.end(); err != nil {
		return err
	}
	lits, err := unzstd(z, total, "answer")
	if err != nil {
		return err
	}
	for i, idx := range ms {
		o := &p.ops[idx]
		if err := p.fill(o, lits[:o.n], lens[i]); err != nil {
			return err
		}
		lits = lits[o.n:]
	}
	p.stats.Wire += len(answer)
	p.relink()
	return nil
}

// fill verifies one answered range against its op and stores its chunks.
func (p *Pending) fill(o *dop, data []byte, lens []int) error {
	fps := make([]Fingerprint, len(lens))
	pos := 0
	for k, l := range lens {
		fps[k] = Sum(data[pos : pos+l])
		pos += l
	}
	switch o.kind {
	case opHead, opTail:
		if edgeCheck(data) != [edgeCheckLen]byte(o.check[:edgeCheckLen]) {
			return errf(ErrMismatch, "answer for edge [%d,+%d) does not match its check", o.off, o.n)
		}
		copy(p.out[o.off:o.off+o.n], data)
		o.valid = true
		p.stats.Misses--
		p.stats.MissBytes -= o.n
		return nil
	}
	if (o.kind != opLiteral && fps[0] != o.fp) || (o.kind == opRun && runCheck(fps) != o.check) {
		return errf(ErrMismatch, "answer for [%d,+%d) does not match its reference %s", o.off, o.n, o.fp)
	}
	copy(p.out[o.off:o.off+o.n], data)
	pos = 0
	s := p.d.store
	for k, l := range lens {
		s.Put(fps[k], p.out[o.off+pos:o.off+pos+l])
		if k > 0 {
			s.Link(fps[k-1], fps[k])
		}
		pos += l
	}
	o.head, o.tail, o.known, o.valid = fps[0], fps[len(fps)-1], true, true
	p.stats.Misses--
	p.stats.MissBytes -= o.n
	return nil
}

// relink records the successor links across op boundaries that were
// unknown while ops were missing.
func (p *Pending) relink() {
	for i := 1; i < len(p.ops); i++ {
		a, b := &p.ops[i-1], &p.ops[i]
		if a.known && b.known && a.kind != opZero && b.kind != opZero {
			p.d.store.Link(a.tail, b.head)
		}
	}
}

// missOps returns the indexes of unresolved ops in order.
func (p *Pending) missOps() []int {
	var ms []int
	for i, o := range p.ops {
		if !o.valid {
			ms = append(ms, i)
		}
	}
	return ms
}
