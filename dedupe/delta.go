package dedupe

import "sync"

// Delta literals: a literal usually replaces a chunk the peer holds (a
// rewritten block changes the chunk around it). The encoder finds the
// probable old chunks through its Local store's successor links and lists
// them as bases; both sides use the bases' bytes as the zstd dictionary
// of the literal stream, so only the difference travels. A receiver
// missing a base turns every literal of the payload into a miss.

// pickBases returns the bases for the literal runs of ops and their
// concatenated bytes (at most MaxBases chunks, MaxDict bytes): first the
// chunks the literals probably replace, then, up to history bytes in all,
// the most recent literal chunks of earlier payloads (history across
// payloads). The caller gives history room for mostly novel payloads only,
// as a large dictionary makes the few literals of a clone's payload cost
// more. The dictionary is ordered history first, so the replaced chunks
// sit nearest the literals.
func (e *Encoder) pickBases(ops []op, fps []Fingerprint, history int) ([]Fingerprint, []byte) {
	bases, dict := e.deltaBases(ops, fps)
	room := min(history, MaxDict) - len(dict)
	if room <= 0 {
		return bases, dict
	}
	inDelta := make(map[Fingerprint]bool, len(bases))
	for _, fp := range bases {
		inDelta[fp] = true
	}
	var hb []Fingerprint
	var hd []byte
	for _, h := range e.hist.recent(room, MaxBases-len(bases)) {
		if inDelta[h] {
			continue
		}
		before := len(hd)
		var ok bool
		if hd, ok = e.local.Get(hd, h); !ok || len(hd) > room {
			hd = hd[:before]
			continue
		}
		hb = append(hb, h)
	}
	return append(hb, bases...), append(hd, dict...)
}

// deltaBases returns the chunks the literal runs of ops probably replace.
func (e *Encoder) deltaBases(ops []op, fps []Fingerprint) ([]Fingerprint, []byte) {
	var (
		bases []Fingerprint
		dict  []byte
		seen  = map[Fingerprint]bool{}
	)
	add := func(fp Fingerprint) bool {
		if seen[fp] {
			return true
		}
		if len(bases) >= MaxBases {
			return false
		}
		before := len(dict)
		var ok bool
		if dict, ok = e.local.Get(dict, fp); !ok {
			return false
		}
		if len(dict) > MaxDict {
			dict = dict[:before]
			return false
		}
		seen[fp] = true
		bases = append(bases, fp)
		return true
	}
	for k := 0; k < len(ops); k++ {
		if ops[k].kind != opLiteral {
			continue
		}
		end, size := k, 0
		for end < len(ops) && ops[end].kind == opLiteral {
			size += ops[end].n
			end++
		}
		// The run probably starts with the chunks after the known chunk
		// before it and ends with the chunks before the known chunk after
		// it (out-of-order writes join two places of the volume).
		need := size + e.p.AvgSize
		if k > 0 && (ops[k-1].kind == opRef || ops[k-1].kind == opRun) {
			prev := ops[k-1]
			e.walk(fps[prev.first+prev.count-1], need, false, add)
		}
		if end < len(ops) && (ops[end].kind == opRef || ops[end].kind == opRun) {
			e.walk(fps[ops[end].first], need, true, add)
		}
		k = end
	}
	return bases, dict
}

// walk follows successor (or predecessor) links from fp in Local, adding
// chunks until need bytes or 64 chunks. Predecessors are added nearest
// last, so the dictionary stays in volume order.
func (e *Encoder) walk(fp Fingerprint, need int, back bool, add func(Fingerprint) bool) {
	var chain []Fingerprint
	got := 0
	for i := 0; i < 64 && got < need; i++ {
		var ok bool
		if back {
			fp, ok = e.local.Predecessor(fp)
		} else {
			fp, ok = e.local.Successor(fp)
		}
		if !ok {
			break
		}
		chain = append(chain, fp)
		got += e.p.AvgSize // an estimate: lengths are only known by fetching
	}
	if back {
		for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
			chain[i], chain[j] = chain[j], chain[i]
		}
	}
	for _, fp := range chain {
		if !add(fp) {
			return
		}
	}
}

// learn adds the payload's chunks and links to Local.
func (e *Encoder) learn(payload []byte, pieces []piece, fps []Fingerprint) {
	var prev *Fingerprint
	for i, pc := range pieces {
		if pc.zero {
			prev = nil
			continue
		}
		e.local.Put(fps[i], payload[pc.off:pc.off+pc.n])
		if prev != nil {
			e.local.Link(*prev, fps[i])
		}
		prev = &fps[i]
	}
}

// historyRoom is the history dictionary of a mostly novel payload at
// level l. Measured on an OS image (sim/workload, docs/dedupe.md): at the
// best and max levels 4 MiB of history saves 2-4% of the bytes over 2 MiB;
// at the lower levels 2 MiB already gives most of the gain, and indexing
// a larger dictionary costs ingest speed the fast levels exist for.
func historyRoom(l Level) int {
	if l >= LevelBest {
		return MaxDict
	}
	return 2 << 20
}

// history remembers the most recent literal chunks (fingerprint and
// length), about MaxDict bytes of them, oldest first.
type history struct {
	mu    sync.Mutex
	fps   []Fingerprint
	sizes []int
	bytes int
}

// add appends the literal chunks of ops.
func (h *history) add(ops []op, fps []Fingerprint) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range ops {
		if o.kind != opLiteral {
			continue
		}
		h.fps = append(h.fps, fps[o.first])
		h.sizes = append(h.sizes, o.n)
		h.bytes += o.n
	}
	drop := 0
	for h.bytes > MaxDict && drop < len(h.fps) {
		h.bytes -= h.sizes[drop]
		drop++
	}
	if drop > 0 {
		h.fps = append(h.fps[:0], h.fps[drop:]...)
		h.sizes = append(h.sizes[:0], h.sizes[drop:]...)
	}
}

// recent returns, oldest first, the newest chunks that fit in room bytes
// and max entries.
func (h *history) recent(room, max int) []Fingerprint {
	h.mu.Lock()
	defer h.mu.Unlock()
	i, size := len(h.fps), 0
	for i > 0 && len(h.fps)-i < max && size+h.sizes[i-1] <= room {
		i--
		size += h.sizes[i]
	}
	return append([]Fingerprint(nil), h.fps[i:]...)
}
