package journal

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// window builds records and their payload region from (offset, data) writes
// and other records (zero/trim/markers carry no data), sequenced from 10 and
// timestamped one second apart.
type window struct {
	recs    []Record
	payload []byte
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (w *window) write(off int64, data []byte) *window {
	w.add(Record{Kind: KindWrite, Offset: off, Length: int64(len(data)), DataOff: int64(len(w.payload))})
	w.payload = append(w.payload, data...)
	return w
}

func (w *window) add(r Record) *window {
	r.Seq = 10 + uint64(len(w.recs))
	r.Time = t0.Add(time.Duration(len(w.recs)) * time.Second)
	w.recs = append(w.recs, r)
	return w
}

func fill(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// data returns the bytes of a coalesced write, gathered from the payload.
func (w *window) data(c Coalesced) []byte {
	var b []byte
	for _, s := range c.Src {
		b = append(b, w.payload[s.DataOff:s.DataOff+s.Length]...)
	}
	return b
}

func TestCoalesce(t *testing.T) {
	snap := Record{Kind: KindSnapshot, Label: "s"}
	type ext struct {
		kind Kind
		off  int64
		data []byte // writes
		n    int64  // zero/trim
	}
	tests := []struct {
		name      string
		w         *window
		maxExtent int64
		want      []ext
	}{
		{"empty", &window{}, 0, nil},
		{"same block twice", new(window).write(0, fill(1, 4)).write(0, fill(2, 4)), 0, []ext{{KindWrite, 0, fill(2, 4), 0}}},
		{"partial overlap", new(window).write(0, fill(1, 8)).write(4, fill(2, 8)), 0,
			[]ext{{KindWrite, 0, fill(1, 4), 0}, {KindWrite, 4, fill(2, 8), 0}}},
		{"inside", new(window).write(0, fill(1, 12)).write(4, fill(2, 4)), 0,
			[]ext{{KindWrite, 0, fill(1, 4), 0}, {KindWrite, 4, fill(2, 4), 0}, {KindWrite, 8, fill(1, 4), 0}}},
		{"joined", new(window).write(0, fill(1, 12)).write(4, fill(2, 4)), 100,
			[]ext{{KindWrite, 0, append(append(fill(1, 4), fill(2, 4)...), fill(1, 4)...), 0}}},
		{"join limit", new(window).write(0, fill(1, 4)).write(4, fill(2, 4)).write(8, fill(3, 4)), 8,
			[]ext{{KindWrite, 0, append(fill(1, 4), fill(2, 4)...), 0}, {KindWrite, 8, fill(3, 4), 0}}},
		{"sorted", new(window).write(8, fill(1, 4)).write(0, fill(2, 4)), 0,
			[]ext{{KindWrite, 0, fill(2, 4), 0}, {KindWrite, 8, fill(1, 4), 0}}},
		{"covers many", new(window).write(0, fill(1, 2)).write(4, fill(1, 2)).write(8, fill(1, 2)).write(0, fill(9, 10)), 0,
			[]ext{{KindWrite, 0, fill(9, 10), 0}}},
		{"marker is a barrier", new(window).write(0, fill(1, 4)).add(snap).write(0, fill(2, 4)), 100,
			[]ext{{KindWrite, 0, fill(1, 4), 0}, {KindSnapshot, 0, nil, 0}, {KindWrite, 0, fill(2, 4), 0}}},
		{"zero drops a write", new(window).write(0, fill(1, 8)).add(Record{Kind: KindZero, Offset: 0, Length: 8}), 0,
			[]ext{{KindZero, 0, nil, 8}}},
		{"write splits a zero", new(window).add(Record{Kind: KindZero, Offset: 0, Length: 12}).write(4, fill(3, 4)), 0,
			[]ext{{KindZero, 0, nil, 4}, {KindWrite, 4, fill(3, 4), 0}, {KindZero, 8, nil, 4}}},
		{"zeros joined, trim kept apart", new(window).add(Record{Kind: KindZero, Offset: 0, Length: 4}).
			add(Record{Kind: KindZero, Offset: 4, Length: 4}).add(Record{Kind: KindTrim, Offset: 8, Length: 4}), 0,
			[]ext{{KindZero, 0, nil, 8}, {KindTrim, 8, nil, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Coalesce(tt.w.recs, tt.maxExtent)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records %+v, want %d", len(got), got, len(tt.want))
			}
			var dataOff int64
			for i, g := range got {
				w := tt.want[i]
				if g.Seq != 10+uint64(i) {
					t.Fatalf("record %d: seq %d, want %d", i, g.Seq, 10+i)
				}
				if g.Kind != w.kind || g.Offset != w.off {
					t.Fatalf("record %d: %s at %d, want %s at %d", i, g.Kind, g.Offset, w.kind, w.off)
				}
				switch {
				case g.Kind == KindWrite:
					if !bytes.Equal(tt.w.data(g), w.data) || g.Length != int64(len(w.data)) || g.DataOff != dataOff {
						t.Fatalf("record %d: data %v (len %d, at %d), want %v at %d", i, tt.w.data(g), g.Length, g.DataOff, w.data, dataOff)
					}
					dataOff += g.Length
				case !g.Kind.IsMarker() && g.Length != w.n:
					t.Fatalf("record %d: length %d, want %d", i, g.Length, w.n)
				}
			}
		})
	}
}

// replayState is a volume as the oracle sees it: bytes, and per byte the
// kind and index of the record that wrote it last (-1 none).
type replayState struct {
	vol   []byte
	kind  []Kind
	owner []int
}

func newReplay(n int) *replayState {
	s := &replayState{vol: make([]byte, n), kind: make([]Kind, n), owner: make([]int, n)}
	for i := range s.owner {
		s.owner[i] = -1
	}
	return s
}

func (s *replayState) apply(r Record, data []byte, idx int) {
	for k := int64(0); k < r.Length; k++ {
		p := r.Offset + k
		s.vol[p], s.kind[p], s.owner[p] = 0, r.Kind, idx
		if r.Kind == KindWrite {
			s.vol[p] = data[k]
		}
	}
}

func (s *replayState) snapshot() string { return fmt.Sprint(s.vol, s.kind) }

// randomWindow makes a run of overlapping writes, zeros, trims and markers
// on a volume of size n.
func randomWindow(rng *rand.Rand, n int) *window {
	w := &window{}
	for i := 0; i < 1+rng.IntN(40); i++ {
		off := int64(rng.IntN(n - 1))
		length := 1 + int64(rng.IntN(min(64, n-int(off))))
		switch x := rng.IntN(20); {
		case x == 0:
			w.add(Record{Kind: KindSnapshot, Label: fmt.Sprint("s", i)})
		case x == 1:
			w.add(Record{Kind: KindCustom, Label: "c", Group: "g", GroupSeq: uint64(i + 1)})
		case x < 4:
			w.add(Record{Kind: KindZero, Offset: off, Length: length})
		case x < 5:
			w.add(Record{Kind: KindTrim, Offset: off, Length: length})
		default:
			d := make([]byte, length)
			for k := range d {
				d[k] = byte(rng.IntN(255) + 1)
			}
			w.write(off, d)
		}
	}
	return w
}

// TestCoalesceReplay checks Coalesce against replaying the records: the
// same volume (bytes and kind of the last change of every byte) at every
// marker and at the end, markers in place, extents sorted and minimal, and
// each record timestamped with the newest write whose bytes it holds.
func TestCoalesceReplay(t *testing.T) {
	const size = 300
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		w := randomWindow(rng, size)
		payload := bytes.Clone(w.payload)
		maxExtent := int64(rng.IntN(3) * 50)
		got := Coalesce(w.recs, maxExtent)
		if !bytes.Equal(payload, w.payload) {
			t.Fatalf("round %d: input modified", round)
		}
		// Replay the input, remembering the state and last writers at each barrier.
		in := newReplay(size)
		var inStates []string
		var owners [][]int
		for i, r := range w.recs {
			if r.Kind.IsMarker() {
				inStates = append(inStates, in.snapshot())
				owners = append(owners, append([]int(nil), in.owner...))
				continue
			}
			var d []byte
			if r.Kind == KindWrite {
				d = w.payload[r.DataOff : r.DataOff+r.Length]
			}
			in.apply(r, d, i)
		}
		inStates = append(inStates, in.snapshot())
		owners = append(owners, in.owner)

		out := newReplay(size)
		var outStates []string
		seg, prevEnd, markers, surviving, outBytes := 0, int64(-1), 0, 0, int64(0)
		var segStart []int // first input index of each segment
		segStart = append(segStart, 0)
		for i, r := range w.recs {
			if r.Kind.IsMarker() {
				segStart = append(segStart, i+1)
			}
		}
		for i, c := range got {
			if c.Seq != w.recs[0].Seq+uint64(i) {
				t.Fatalf("round %d: record %d has seq %d", round, i, c.Seq)
			}
			if c.Kind.IsMarker() {
				markers++
				if c.Label != w.recs[segStart[seg+1]-1].Label {
					t.Fatalf("round %d: marker %q out of place", round, c.Label)
				}
				outStates = append(outStates, out.snapshot())
				seg, prevEnd = seg+1, -1
				continue
			}
			if c.Offset < prevEnd {
				t.Fatalf("round %d: extents of a segment overlap or are not ascending", round)
			}
			prevEnd = c.Offset + c.Length
			if c.Kind == KindWrite && c.Length > maxExtent && len(c.Src) > 1 {
				t.Fatalf("round %d: joined write of %d bytes over the %d limit", round, c.Length, maxExtent)
			}
			// Newest timestamp of the writes whose bytes it holds.
			var newest time.Time
			for p := c.Offset; p < c.Offset+c.Length; p++ {
				o := owners[seg][p]
				if o < segStart[seg] {
					t.Fatalf("round %d: record %d holds byte %d that its segment did not change", round, i, p)
				}
				newest = newer(newest, w.recs[o].Time)
			}
			if !c.Time.Equal(newest) {
				t.Fatalf("round %d: record %d time %v, want %v", round, i, c.Time, newest)
			}
			d := w.data(c)
			if c.Kind == KindWrite {
				outBytes += c.Length
			}
			out.apply(c.Record, d, i)
		}
		outStates = append(outStates, out.snapshot())
		if fmt.Sprint(inStates) != fmt.Sprint(outStates) {
			t.Fatalf("round %d: coalesced records give another volume at a marker or the end", round)
		}
		// Minimal: every surviving written byte travels once, nothing else.
		for s := range owners {
			for p, o := range owners[s] {
				if o >= segStart[s] && w.recs[o].Kind == KindWrite && (s == 0 || owners[s-1][p] != o) {
					surviving++
				}
			}
		}
		if outBytes != int64(surviving) {
			t.Fatalf("round %d: %d payload bytes out, %d bytes survive", round, outBytes, surviving)
		}
		if markers != len(segStart)-1 {
			t.Fatalf("round %d: %d markers out, %d in", round, markers, len(segStart)-1)
		}
	}
}
