package workload

import "math"

// vocab is a list of items (words, phrases, code idioms) drawn with Zipf
// frequencies: rank r with probability ∝ 1/r^s, through a table so a draw
// costs a few nanoseconds.
type vocab struct {
	text  []byte   // all items back to back
	off   []uint32 // item i is text[off[i]:off[i+1]]
	table [4096]struct{ lo, span uint32 }
}

// englishLetters is a letter pool with roughly English frequencies.
const englishLetters = "eeeeeeeeeeeetttttttttaaaaaaaaooooooooiiiiiiinnnnnnnsssssshhhhhhrrrrrrddddllllcccuuummwwffggyyppbbvkjxqz"

// newWords makes n distinct word-like strings, frequent ones short.
func newWords(seed uint64, n int, s float64) *vocab {
	r := rng{s: mix(seed, 0x766f636162)}
	items := make([][]byte, 0, n)
	seen := make(map[string]bool, n)
	for len(items) < n {
		rank := len(items) + 1
		mean := 2 + math.Log2(float64(rank))*0.6
		l := max(2, min(int(mean+float64(r.intn(5))-2), 14))
		w := make([]byte, l)
		for i := range w {
			w[i] = englishLetters[r.intn(len(englishLetters))]
		}
		if rank%17 == 0 {
			w[0] -= 'a' - 'A' // some capitalized words (names)
		}
		if seen[string(w)] {
			continue
		}
		seen[string(w)] = true
		items = append(items, w)
	}
	return newVocab(items, s)
}

// newVocab builds the table for items in rank order and exponent s (≠ 1).
func newVocab(items [][]byte, s float64) *vocab {
	v := &vocab{off: make([]uint32, 0, len(items)+1)}
	for _, it := range items {
		v.off = append(v.off, uint32(len(v.text)))
		v.text = append(v.text, it...)
	}
	v.off = append(v.off, uint32(len(v.text)))
	n := float64(len(items))
	// Inverse of the continuous CDF ∝ r^(1-s) - 1. Table cell k covers
	// u in [k/4096, (k+1)/4096); inside a cell ranks are drawn uniformly.
	inv := func(u float64) float64 { return math.Pow(1+u*(math.Pow(n, 1-s)-1), 1/(1-s)) }
	for k := range v.table {
		lo, hi := inv(float64(k)/4096), inv(float64(k+1)/4096)
		v.table[k].lo = uint32(lo) - 1
		v.table[k].span = max(1, uint32(hi)-uint32(lo))
	}
	return v
}

// pick returns an item index drawn from the random value x.
func (v *vocab) pick(x uint64) int {
	c := v.table[x&4095]
	i := int(c.lo + uint32((x>>12)&0xffffffff)%c.span)
	return min(i, len(v.off)-2)
}

// word returns item i.
func (v *vocab) word(i int) []byte { return v.text[v.off[i]:v.off[i+1]] }

// rand returns an item drawn from x.
func (v *vocab) rand(x uint64) []byte { return v.word(v.pick(x)) }
