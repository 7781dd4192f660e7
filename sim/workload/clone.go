package workload

import "sort"

// Shares of a clone's change budget (ChangeFraction of all blocks) per cause.
const (
	shareIdentity = 0.02 // host name, machine id, keys: single config blocks
	shareLogs     = 0.20 // rotated and grown logs
	shareUpdates  = 0.18 // updated packages: binaries rewritten
	sharePage     = 0.30 // a page file in free space
	shareNewData  = 0.30 // new files in free space
)

// cloneChanges picks the extents a clone rewrites, sorted by block. The
// template's layout decides where (the page file lands in the largest free
// area, as the filesystem would put it); the clone's seed decides which
// files change and all new content.
func cloneChanges(c Config, tmpl []extent, seed uint64) []extent {
	r := rng{s: mix(seed, 0x636c6f6e65)}
	total := c.Size / BlockSize
	budget := func(share float64) int64 { return max(1, int64(float64(total)*c.ChangeFraction*share)) }
	byKind := make(map[Kind][]int)
	largestFree := -1
	for i, e := range tmpl {
		byKind[e.kind] = append(byKind[e.kind], i)
		if e.kind == KindFree && (largestFree < 0 || e.n > tmpl[largestFree].n) {
			largestFree = i
		}
	}
	taken := make(map[int]bool)
	var out []extent
	// rewrite picks random template extents of a kind and rewrites up to
	// want blocks of each (whole extents, or single blocks when single).
	rewrite := func(k Kind, want int64, single bool) {
		idx := byKind[k]
		for tries := 0; want > 0 && len(idx) > 0 && tries < 4*len(idx)+64; tries++ {
			i := idx[r.intn(len(idx))]
			if taken[i] {
				continue
			}
			taken[i] = true
			e := tmpl[i]
			if single {
				b := e.start + int64(r.intn(int(e.n)))
				ne := extent{start: b, n: 1, kind: k, seed: seed}
				if b == e.end()-1 {
					ne.tail = e.tail
				}
				out = append(out, ne)
				want--
				continue
			}
			e.seed = seed
			e.n = min(e.n, want)
			if e.n < tmpl[i].n {
				e.tail = 0
			}
			out = append(out, e)
			want -= e.n
		}
	}
	rewrite(KindConfig, budget(shareIdentity), true)
	rewrite(KindLog, budget(shareLogs), false)
	rewrite(KindBinary, budget(shareUpdates), false)
	if largestFree >= 0 {
		e := tmpl[largestFree]
		taken[largestFree] = true
		out = append(out, extent{start: e.start, n: min(e.n, budget(sharePage)), kind: KindPage, seed: seed})
	}
	newKinds := [...]Kind{KindProse, KindLog, KindConfig, KindBinary, KindBinary, KindPacked}
	want := budget(shareNewData)
	frees := byKind[KindFree]
	for tries := 0; want > 0 && len(frees) > 0 && tries < 4*len(frees)+64; tries++ {
		i := frees[r.intn(len(frees))]
		if taken[i] {
			continue
		}
		taken[i] = true
		e := tmpl[i]
		n := min(e.n, want, lognormal(&r, 32, 1))
		out = append(out, extent{start: e.start, n: n, kind: newKinds[r.intn(len(newKinds))], seed: seed})
		want -= n
	}
	sort.Slice(out, func(a, b int) bool { return out[a].start < out[b].start })
	return out
}
