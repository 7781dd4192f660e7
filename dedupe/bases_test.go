package dedupe

import (
	"bytes"
	"errors"
	"testing"
)

// streamBases parses stream up to its base list and returns the entries
// and the offset of the list.
func streamBases(t *testing.T, d *Decoder, stream []byte) ([]baseRun, int) {
	t.Helper()
	r := reader{b: stream, what: "test"}
	r.header(magicStream)
	r.u64()
	size := r.uvarint("payload length", 1<<40)
	r.u32()
	d.parseOps(&r, int(size))
	at := r.pos
	bases := parseBases(&r)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return bases, at
}

// novelPayloads returns n text-like payloads of size bytes, each new.
func novelPayloads(seed uint64, n, size int) [][]byte {
	g := newImageGen(seed)
	var out [][]byte
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		g.text(b)
		out = append(out, b)
	}
	return out
}

// The history bases of a mostly novel payload (the recent literal chunks
// of earlier payloads) travel as a few run entries, not one fingerprint a
// chunk, and rebuild the same dictionary on the receiver.
func TestBaseRunsCompact(t *testing.T) {
	pr := newLocalPair(t)
	payloads := novelPayloads(41, 3, 1<<20)
	pr.send(t, payloads[0])
	pr.send(t, payloads[1])
	stream, st, err := pr.enc.Encode(nil, payloads[2])
	if err != nil {
		t.Fatal(err)
	}
	if st.DictBytes < 1<<20 {
		t.Fatalf("dictionary of %d bytes, want the earlier payloads' literals", st.DictBytes)
	}
	bases, _ := streamBases(t, pr.dec, stream)
	chunks := 0
	for _, b := range bases {
		chunks += b.count
	}
	if chunks < 100 || len(bases) > 4 {
		t.Fatalf("%d base chunks in %d entries, want runs", chunks, len(bases))
	}
	p, err := pr.dec.Decode(stream)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Complete() {
		t.Fatalf("decode missed %d ops with the bases in the store", p.Stats().Misses)
	}
	got, err := p.Payload()
	if err != nil || !bytes.Equal(got, payloads[2]) {
		t.Fatalf("payload: %v", err)
	}
}

// A base run that does not match the receiver's store (wrong check) turns
// the literals into misses, which the sender's answer resolves.
func TestBaseRunMismatchIsMiss(t *testing.T) {
	pr := newLocalPair(t)
	payloads := novelPayloads(42, 3, 1<<20)
	pr.send(t, payloads[0])
	pr.send(t, payloads[1])
	stream, _, err := pr.enc.Encode(nil, payloads[2])
	if err != nil {
		t.Fatal(err)
	}
	bases, at := streamBases(t, pr.dec, stream)
	if len(bases) == 0 || bases[0].count < 2 {
		t.Fatalf("want a base run first, got %+v", bases)
	}
	// entry count, run length (uvarints), fingerprint, then the check.
	r := reader{b: stream[at:]}
	r.uvarint("", MaxBases)
	r.uvarint("", MaxBases)
	bad := bytes.Clone(stream)
	bad[at+r.pos+len(Fingerprint{})] ^= 1
	p, err := pr.dec.Decode(bad)
	if err != nil {
		t.Fatal(err)
	}
	if p.Complete() {
		t.Fatal("a base run with a wrong check resolved")
	}
	ans, err := pr.enc.Answer(nil, payloads[2], p.AppendMissList(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Resolve(ans); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Payload(); err != nil || !bytes.Equal(got, payloads[2]) {
		t.Fatalf("payload after recovery: %v", err)
	}
}

// A base run whose walk along the receiver's successor links does not
// match its check is a miss even when the chunks it walks would overflow
// the dictionary limit: the check comes before the bytes.
func TestBaseRunCheckedBeforeSize(t *testing.T) {
	st, err := OpenStore(StoreConfig{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(DecoderConfig{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	chunks := novelPayloads(45, 600, 8<<10) // 600 x 8 KiB = 4.7 MiB > MaxDict, linked in a chain
	var prev Fingerprint
	for i, c := range chunks {
		fp := Sum(c)
		st.Put(fp, c)
		if i > 0 {
			st.Link(prev, fp)
		}
		prev = fp
	}
	first := Sum(chunks[0])
	_, ok, err := d.dictionary([]baseRun{{count: 600, fp: first}}) // zero check: not this chain's
	if err != nil || ok {
		t.Fatalf("run with a wrong check: ok=%v err=%v, want a miss", ok, err)
	}
	fps := make([]Fingerprint, 600)
	for i, c := range chunks {
		fps[i] = Sum(c)
	}
	_, ok, err = d.dictionary([]baseRun{{count: 600, fp: first, check: runCheck(fps)}})
	if !errors.Is(err, ErrCorrupt) || ok {
		t.Fatalf("checked run over %d bytes: ok=%v err=%v, want ErrCorrupt", 600*8<<10, ok, err)
	}
}

// At level max, a dictionary starting with the zstd dictionary magic (a
// history chunk that begins like a .zdict file) still round-trips: libzstd
// takes it as raw content (a prefix), as the decoder does; its automatic
// dictionary mode would have parsed it as a formatted dictionary.
func TestLevelMaxDictMagic(t *testing.T) {
	if !MaxAvailable() {
		t.Skip("no cgo: level max unavailable")
	}
	pr := newLocalPair(t)
	if err := pr.enc.SetLevel(LevelMax); err != nil {
		t.Fatal(err)
	}
	ps := novelPayloads(46, 2, 256<<10)
	copy(ps[0], []byte{0x37, 0xA4, 0x30, 0xEC, 1, 0, 0, 0}) // magic, dictionary id 1
	pr.send(t, ps[0])
	st, _ := pr.send(t, ps[1]) // decodes and compares
	if st.DictBytes == 0 {
		t.Fatal("the second payload used no history dictionary")
	}
}
