package dedupe

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// fuzzHistory is what the fuzzed decoder's store already holds: a payload
// decoded before, so references and runs in mutated streams can resolve.
func fuzzHistory() []byte {
	g := newImageGen(99)
	return g.template(256 << 10)
}

// fuzzSeeds are valid streams: literals only, runs and refs against the
// history, zero runs, and an empty payload.
func fuzzSeeds(t testing.TB) [][]byte {
	hist := fuzzHistory()
	local, err := OpenStore(StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEncoder(EncoderConfig{Params: Params{AvgSize: 1 << 10}, Local: local})
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	add := func(p []byte) {
		s, _, err := e.Encode(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, s)
	}
	add(hist) // literals (first seen)
	add(nil)
	add(hist[:20000])                                                                   // one run
	add(append(append([]byte("new bytes"), hist[5000:9000]...), make([]byte, 5000)...)) // literal, refs, zero run
	add(bytes.Repeat([]byte("xyz"), 3000))
	add(hist[12345:60000]) // head and tail edges
	edited := append([]byte(nil), hist[:40000]...)
	copy(edited[20000:], "a few new bytes inside a known chunk")
	add(edited) // a literal compressed against its base
	novel := newImageGen(100).template(64 << 10)
	add(novel) // new data: the history of earlier literals as base runs
	if MaxAvailable() {
		if err := e.SetLevel(LevelMax); err != nil {
			t.Fatal(err)
		}
		add(newImageGen(101).template(64 << 10)) // a libzstd frame over history bases
	}
	return seeds
}

func fuzzDecoder(t testing.TB) *Decoder {
	st, err := OpenStore(StoreConfig{MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDecoder(DecoderConfig{Params: Params{AvgSize: 1 << 10}, Store: st, MaxPayload: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzDecode when
// AIMWAN_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("AIMWAN_WRITE_SEEDS") != "1" {
		t.Skip("set AIMWAN_WRITE_SEEDS=1 to rewrite the FuzzDecode corpus seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range fuzzSeeds(t)[1:] { // the first one is the history
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	d := fuzzDecoder(f)
	if p, err := d.Decode(seeds[0]); err != nil || !p.Complete() {
		f.Fatalf("history: %v", err)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		n, serr := d.StreamSize(stream)
		p, err := d.Decode(stream)
		if err == nil && (serr != nil || n != len(stream)) {
			t.Fatalf("decoded a stream StreamSize measures as %d, %v", n, serr)
		}
		if err != nil {
			return
		}
		_ = p.AppendMissList(nil)
		if p.Complete() {
			_, _ = p.Payload()
		}
	})
}

// FuzzResolve feeds arbitrary answers to a payload with misses.
func FuzzResolve(f *testing.F) {
	hist := fuzzHistory()
	e, _ := NewEncoder(EncoderConfig{Params: Params{AvgSize: 1 << 10}})
	if _, _, err := e.Encode(nil, hist); err != nil {
		f.Fatal(err)
	}
	stream, _, err := e.Encode(nil, hist[:30000])
	if err != nil {
		f.Fatal(err)
	}
	probe := fuzzDecoder(f) // cold: everything misses
	p, err := probe.Decode(stream)
	if err != nil || p.Complete() {
		f.Fatalf("probe decode: %v", err)
	}
	good, err := e.Answer(nil, hist[:30000], p.AppendMissList(nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, answer []byte) {
		d := fuzzDecoder(t)
		p, err := d.Decode(stream)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Resolve(answer); err != nil {
			return
		}
		if got, err := p.Payload(); err == nil && !bytes.Equal(got, hist[:30000]) {
			t.Fatal("resolved to a different payload without an error")
		}
	})
}

func FuzzParseMissList(f *testing.F) {
	p := &Pending{d: fuzzDecoder(f), out: make([]byte, 1000), ops: []dop{{kind: opRef, off: 100, n: 50, count: 1}}}
	p.stats.Misses = 1
	f.Add(p.AppendMissList(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ranges, err := ParseMissList(b, 1000)
		if err != nil {
			return
		}
		end := 0
		for _, r := range ranges {
			if r.Offset < end || r.Length <= 0 || r.Offset+r.Length > 1000 {
				t.Fatalf("accepted bad range %+v", r)
			}
			end = r.Offset + r.Length
		}
	})
}
