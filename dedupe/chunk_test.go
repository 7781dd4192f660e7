package dedupe

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/restic/chunker"
)

// libraryCuts chunks b with restic/chunker itself (the reference).
func libraryCuts(t *testing.T, b []byte, p Params) []int {
	t.Helper()
	c := chunker.NewWithBoundaries(bytes.NewReader(b), p.Pol, uint(p.MinSize), uint(p.MaxSize))
	c.SetAverageBits(p.avgBits())
	var cuts []int
	buf := make([]byte, 0, p.MaxSize)
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			return cuts
		}
		if err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, int(ch.Length))
	}
}

func TestRabinMatchesChunker(t *testing.T) {
	g := newImageGen(7)
	rnd := make([]byte, 3<<20)
	g.random(rnd)
	txt := make([]byte, 2<<20)
	g.text(txt)
	bin := make([]byte, 2<<20)
	g.binary(bin)
	for _, p := range []Params{
		{}, {AvgSize: 4 << 10}, {AvgSize: 16 << 10}, {AvgSize: 1 << 10, MinSize: 64, MaxSize: 1 << 10},
		{AvgSize: 4 << 10, MinSize: 4 << 10, MaxSize: 4 << 10}, {AvgSize: 512, MinSize: 100, MaxSize: 60 << 10},
	} {
		p, err := p.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{"random": rnd, "text": txt, "binary": bin, "short": rnd[:1000]} {
			t.Run(p.ID()+"/"+name, func(t *testing.T) {
				want := libraryCuts(t, data, p)
				s := newSplitter(p)
				pieces, _ := s.chunkSegment(nil, data, 0, len(data))
				if len(pieces) != len(want) {
					t.Fatalf("%d chunks, library cuts %d", len(pieces), len(want))
				}
				for i, pc := range pieces {
					if pc.n != want[i] {
						t.Fatalf("chunk %d: %d bytes, library %d", i, pc.n, want[i])
					}
				}
			})
		}
	}
}

func TestDefaultPolIrreducible(t *testing.T) {
	if !DefaultPol.Irreducible() {
		t.Fatal("DefaultPol is reducible")
	}
}

func TestNextZeroRun(t *testing.T) {
	mk := func(spec ...int) []byte { // alternating nonzero, zero lengths
		var b []byte
		for i, n := range spec {
			v := byte(0)
			if i%2 == 0 {
				v = 0xab
			}
			b = append(b, bytes.Repeat([]byte{v}, n)...)
		}
		return b
	}
	tests := []struct {
		name       string
		b          []byte
		from, min  int
		start, end int
	}{
		{"none", mk(1000), 0, 64, 1000, 1000},
		{"exact", mk(10, 64, 10), 0, 64, 10, 74},
		{"too short", mk(10, 63, 10), 0, 64, 83, 83},
		{"short then long", mk(10, 63, 10, 200, 5), 0, 64, 83, 283},
		{"at start", mk(0, 100, 3), 0, 64, 0, 100},
		{"at end", mk(7, 100), 0, 64, 7, 107},
		{"odd alignment", mk(13, 4097, 1), 0, 4096, 13, 4110},
		{"from", mk(10, 100, 10, 100), 110, 64, 120, 220},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e := nextZeroRun(tt.b, tt.from, tt.min)
			if s != tt.start || e != tt.end {
				t.Fatalf("got [%d,%d), want [%d,%d)", s, e, tt.start, tt.end)
			}
		})
	}
}
