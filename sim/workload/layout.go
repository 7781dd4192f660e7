package workload

import (
	"math"
	"sort"
)

// extent is a run of blocks with one kind of content written by one seed.
type extent struct {
	start, n int64  // first block and count
	seed     uint64 // seed of the image generation that wrote it
	tail     uint16 // bytes used in the last block of a file (0 = all)
	kind     Kind
}

func (e extent) end() int64 { return e.start + e.n }

// groupBlocks is an ext4 block group: metadata at its start, files after.
const groupBlocks = 32768

// medianBlocks is the median extent size per kind (files of that kind).
var medianBlocks = [numKinds]float64{KindProse: 2, KindConfig: 1, KindLog: 6, KindBinary: 12, KindPacked: 20, KindMeta: 4}

// layout allocates a template's blocks to extents like a fresh filesystem:
// per block group an inode table, then files packed with small gaps, then
// the group's free tail.
func layout(c Config) []extent {
	r := rng{s: mix(c.Seed, 0x6c61796f7574)}
	total := c.Size / BlockSize
	w := c.Mix.weights()
	// Choose a kind per extent with probability ∝ share / mean size, so the
	// block shares come out as configured.
	var cum [numKinds]float64
	var sum float64
	for k := range w {
		if w[k] > 0 {
			sum += w[k] / (medianBlocks[k] * math.Exp(0.5)) // lognormal mean, σ=1
		}
		cum[k] = sum
	}
	var out []extent
	for g := int64(0); g < total; g += groupBlocks {
		end := min(g+groupBlocks, total)
		n := end - g
		metaN := max(1, n/64)
		out = append(out, extent{start: g, n: metaN, kind: KindMeta, seed: c.Seed})
		used := int64(float64(n)*c.UsedFraction*(0.8+0.4*r.float())) - metaN
		pos := g + metaN
		for pos < end && used > 0 {
			x := r.float() * sum
			k := sort.SearchFloat64s(cum[:], x)
			k = min(k, int(numKinds)-1)
			for w[k] <= 0 { // guard: SearchFloat64s lands on the first cell ≥ x
				k++
			}
			size := lognormal(&r, medianBlocks[k], 1)
			size = min(size, end-pos, used, 4096)
			out = append(out, extent{start: pos, n: size, kind: Kind(k), seed: c.Seed, tail: uint16(r.intn(BlockSize))})
			pos += size
			used -= size
			if r.chance(0.15) { // a small hole left by deleted files
				gap := min(lognormal(&r, 2, 1), end-pos)
				if gap > 0 {
					out = append(out, extent{start: pos, n: gap, kind: KindFree})
					pos += gap
				}
			}
		}
		if pos < end {
			out = append(out, extent{start: pos, n: end - pos, kind: KindFree})
		}
	}
	return out
}

// lognormal draws a size ≥ 1 with the given median and σ.
func lognormal(r *rng, median, sigma float64) int64 {
	u1, u2 := max(r.float(), 1e-12), r.float()
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	return max(1, int64(median*math.Exp(sigma*z)+0.5))
}

// find returns the index of the extent holding block b in sorted, non
// overlapping exts, or -1.
func find(exts []extent, b int64) int {
	i := sort.Search(len(exts), func(i int) bool { return exts[i].end() > b })
	if i < len(exts) && exts[i].start <= b {
		return i
	}
	return -1
}
