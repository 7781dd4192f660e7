package dedupe

import (
	"bytes"
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
