package dedupe

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// applyWrites plays writes onto a zeroed volume of size n.
func applyWrites(n int, ws []Write) []byte {
	v := make([]byte, n)
	for _, w := range ws {
		copy(v[w.Offset:], w.Data)
	}
	return v
}

func TestCoalesce(t *testing.T) {
	fill := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	tests := []struct {
		name      string
		writes    []Write
		maxExtent int
		want      []Write
	}{
		{"empty", nil, 0, nil},
		{"same block twice", []Write{{0, fill(1, 4)}, {0, fill(2, 4)}}, 0, []Write{{0, fill(2, 4)}}},
		{"partial overlap", []Write{{0, fill(1, 8)}, {4, fill(2, 8)}}, 0, []Write{{0, fill(1, 4)}, {4, fill(2, 8)}}},
		{"inside", []Write{{0, fill(1, 12)}, {4, fill(2, 4)}}, 0, []Write{{0, fill(1, 4)}, {4, fill(2, 4)}, {8, fill(1, 4)}}},
		{"joined", []Write{{0, fill(1, 12)}, {4, fill(2, 4)}}, 100, []Write{{0, append(append(fill(1, 4), fill(2, 4)...), fill(1, 4)...)}}},
		{"join limit", []Write{{0, fill(1, 4)}, {4, fill(2, 4)}, {8, fill(3, 4)}}, 8, []Write{{0, append(fill(1, 4), fill(2, 4)...)}, {8, fill(3, 4)}}},
		{"sorted", []Write{{8, fill(1, 4)}, {0, fill(2, 4)}}, 0, []Write{{0, fill(2, 4)}, {8, fill(1, 4)}}},
		{"covers many", []Write{{0, fill(1, 2)}, {4, fill(1, 2)}, {8, fill(1, 2)}, {0, fill(9, 10)}}, 0, []Write{{0, fill(9, 10)}}},
		{"empty write ignored", []Write{{0, nil}, {0, fill(1, 1)}}, 0, []Write{{0, fill(1, 1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Coalesce(tt.writes, tt.maxExtent)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d extents %v, want %v", len(got), got, tt.want)
			}
			for i := range got {
				if got[i].Offset != tt.want[i].Offset || !bytes.Equal(got[i].Data, tt.want[i].Data) {
					t.Fatalf("extent %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestCoalesceRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var ws []Write
		orig := map[*byte][]byte{}
		for i := 0; i < 1+rng.IntN(30); i++ {
			d := make([]byte, 1+rng.IntN(64))
			for k := range d {
				d[k] = byte(rng.IntN(255) + 1)
			}
			ws = append(ws, Write{int64(rng.IntN(200)), d})
			orig[&d[0]] = append([]byte(nil), d...)
		}
		got := Coalesce(ws, rng.IntN(3)*50)
		if !bytes.Equal(applyWrites(300, got), applyWrites(300, ws)) {
			t.Fatalf("round %d: coalesced writes give another volume", round)
		}
		total := 0
		for i, e := range got {
			total += len(e.Data)
			if i > 0 && got[i-1].Offset+int64(len(got[i-1].Data)) > e.Offset {
				t.Fatalf("round %d: extents overlap or unsorted", round)
			}
		}
		if total > 264 {
			t.Fatalf("round %d: %d bytes for at most 264 distinct", round, total)
		}
		for _, w := range ws { // inputs untouched
			if !bytes.Equal(w.Data, orig[&w.Data[0]]) {
				t.Fatalf("round %d: input modified", round)
			}
		}
	}
}
