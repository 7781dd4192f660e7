package journal

import (
	"slices"
	"sort"
	"time"
)

// Span is a run of bytes of an input payload region: Length bytes from
// DataOff.
type Span struct{ DataOff, Length int64 }

// Coalesced is one record of a coalesced run of records. Its Record has Seq
// and, for a write, DataOff and Length set for the output (consecutive
// sequence numbers from the input's first, data back to back); CRC is left
// for the caller, who copies the bytes. Src lists where a write's bytes come
// from in the input payload region, in order.
type Coalesced struct {
	Record
	Src []Span
}

// Coalesce merges a run of records, given in order with writes' DataOff
// pointing into one payload region (as in a journal file), into the fewest
// records that leave the volume in the same state at every marker and at
// the end:
//
//   - Markers are barriers and keep their place: records between two markers
//     (a segment) are merged among themselves only.
//   - Inside a segment the later record wins where records overlap: a write's
//     bytes that a later write, zero or trim covers are dropped, and a later
//     write over a zeroed range splits it. Zero and trim stay distinct kinds.
//   - The surviving extents of a segment come out in ascending offset order;
//     touching writes are joined into one record while it stays within
//     maxExtent bytes (0: no joining), touching ranges of the same zero/trim
//     kind are always joined.
//   - Each output record carries the newest timestamp of the input records
//     whose bytes it holds.
//
// A block rewritten N times in a segment therefore travels once. The result
// renumbers sequences from recs[0].Seq. recs is not modified.
func Coalesce(recs []Record, maxExtent int64) []Coalesced {
	var out []Coalesced
	start := 0
	for i := 0; i <= len(recs); i++ {
		if i < len(recs) && recs[i].Kind.HasRange() {
			continue
		}
		out = coalesceSegment(out, recs[start:i], maxExtent)
		if i < len(recs) {
			out = append(out, Coalesced{Record: recs[i]})
		}
		start = i + 1
	}
	var seq uint64
	if len(recs) > 0 {
		seq = recs[0].Seq
	}
	var dataOff int64
	for i := range out {
		out[i].Seq = seq + uint64(i)
		if out[i].Kind == KindWrite {
			out[i].DataOff = dataOff
			dataOff += out[i].Length
		}
	}
	return out
}

// piece is a run of one record's surviving bytes.
type piece struct {
	rec      *Record
	off, end int64
}

// coalesceSegment appends the coalesced records of a segment without
// markers. Each elementary interval (between two record boundaries) belongs
// to the newest record covering it: records are painted newest first, a
// union-find skipping intervals already painted, so every interval is
// visited once (O(n log n) for n records).
func coalesceSegment(out []Coalesced, seg []Record, maxExtent int64) []Coalesced {
	if len(seg) == 0 {
		return out
	}
	bounds := make([]int64, 0, 2*len(seg))
	for _, r := range seg {
		bounds = append(bounds, r.Offset, r.Offset+r.Length)
	}
	slices.Sort(bounds)
	bounds = slices.Compact(bounds)
	owner := make([]int, len(bounds)-1)
	next := make([]int, len(bounds)) // union-find: the first unpainted interval >= i
	for i := range next {
		next[i] = i
	}
	find := func(i int) int {
		root := i
		for next[root] != root {
			root = next[root]
		}
		for next[i] != root {
			next[i], i = root, next[i]
		}
		return root
	}
	for i := len(seg) - 1; i >= 0; i-- {
		lo := sort.Search(len(bounds), func(k int) bool { return bounds[k] >= seg[i].Offset })
		hi := sort.Search(len(bounds), func(k int) bool { return bounds[k] >= seg[i].Offset+seg[i].Length })
		for j := find(lo); j < hi; j = find(j) {
			owner[j] = i + 1 // 0 = unpainted
			next[j] = j + 1
		}
	}
	var ps []piece
	for j, o := range owner {
		if o == 0 {
			continue
		}
		r := &seg[o-1]
		if n := len(ps); n > 0 && ps[n-1].rec == r && ps[n-1].end == bounds[j] {
			ps[n-1].end = bounds[j+1]
			continue
		}
		ps = append(ps, piece{rec: r, off: bounds[j], end: bounds[j+1]})
	}
	return joinPieces(out, ps, maxExtent)
}

// joinPieces turns the sorted surviving pieces of a segment into records,
// joining touching pieces of the same kind (writes up to maxExtent bytes).
func joinPieces(out []Coalesced, ps []piece, maxExtent int64) []Coalesced {
	first := len(out)
	for _, p := range ps {
		r := p.rec
		n := p.end - p.off
		if len(out) > first {
			last := &out[len(out)-1]
			if last.Kind == r.Kind && last.Offset+last.Length == p.off &&
				(r.Kind != KindWrite || last.Length+n <= maxExtent) {
				last.Length += n
				last.Time = newer(last.Time, r.Time)
				if r.Kind == KindWrite {
					last.Src = appendSpan(last.Src, Span{r.DataOff + p.off - r.Offset, n})
				}
				continue
			}
		}
		c := Coalesced{Record: Record{Kind: r.Kind, Time: r.Time, Offset: p.off, Length: n}}
		if r.Kind == KindWrite {
			c.Src = []Span{{r.DataOff + p.off - r.Offset, n}}
		}
		out = append(out, c)
	}
	return out
}

// appendSpan appends s, extending the last span when s continues it.
func appendSpan(ss []Span, s Span) []Span {
	if n := len(ss); n > 0 && ss[n-1].DataOff+ss[n-1].Length == s.DataOff {
		ss[n-1].Length += s.Length
		return ss
	}
	return append(ss, s)
}

func newer(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
