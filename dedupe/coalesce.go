package dedupe

import (
	"slices"
	"sort"
)

// Write is one volume write: data at a byte offset.
type Write struct {
	Offset int64
	Data   []byte
}

// Coalesce merges a window of writes, given in the order they were made,
// into the smallest set of non-overlapping extents holding the final bytes
// of the window: where writes overlap, the later one wins. Adjacent extents
// are joined while the joined extent stays within maxExtent bytes (0 means
// no joining). The result is sorted by offset. Data of the result may alias
// the input's Data.
//
// This is write coalescing on the source side (the snapshot-replication
// trick): a block rewritten N times in the window travels once. The
// trade-off is RPO and crash consistency: the destination never sees the
// states inside the window, and the window's writes become visible all at
// once, so a window must end at every marker (snapshot, custom, group) and
// its length adds to the RPO. See docs/dedupe.md.
func Coalesce(writes []Write, maxExtent int) []Write {
	var ext []Write // sorted, non-overlapping
	for _, w := range writes {
		if len(w.Data) == 0 {
			continue
		}
		ext = overlay(ext, w)
	}
	if maxExtent <= 0 {
		return ext
	}
	return join(ext, maxExtent)
}

// overlay puts w over the sorted extents, trimming what it covers.
func overlay(ext []Write, w Write) []Write {
	lo, hi := w.Offset, w.Offset+int64(len(w.Data))
	// First extent that ends after lo.
	i := sort.Search(len(ext), func(k int) bool { return ext[k].Offset+int64(len(ext[k].Data)) > lo })
	j := i
	var keep []Write
	for ; j < len(ext) && ext[j].Offset < hi; j++ {
		e := ext[j]
		if e.Offset < lo { // left part survives
			keep = append(keep, Write{e.Offset, e.Data[:lo-e.Offset]})
		}
		if end := e.Offset + int64(len(e.Data)); end > hi { // right part survives
			keep = append(keep, Write{hi, e.Data[hi-e.Offset:]})
		}
	}
	repl := make([]Write, 0, len(keep)+1)
	for _, k := range keep {
		if k.Offset < lo {
			repl = append(repl, k)
		}
	}
	repl = append(repl, w)
	for _, k := range keep {
		if k.Offset >= hi {
			repl = append(repl, k)
		}
	}
	return slices.Replace(ext, i, j, repl...)
}

// join concatenates touching extents up to maxExtent bytes.
func join(ext []Write, maxExtent int) []Write {
	var out []Write
	for _, e := range ext {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Offset+int64(len(last.Data)) == e.Offset && len(last.Data)+len(e.Data) <= maxExtent {
				last.Data = append(slices.Clip(last.Data), e.Data...) // copies: never writes into the input
				continue
			}
		}
		out = append(out, e)
	}
	return out
}
