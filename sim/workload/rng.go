package workload

import "math/bits"

// rng is wyrand: tiny, fast and good enough for synthetic content. The zero
// value is usable; every generator seeds its own from (seed, block).
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// intn returns a value in [0, n) (n > 0).
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

// chance reports true with probability p (0..1).
func (r *rng) chance(p float64) bool { return float64(r.next()>>11)*(1.0/(1<<53)) < p }

// float returns a value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) * (1.0 / (1 << 53)) }

// mix hashes a and b into a well-spread 64-bit value (splitmix64 finalizer).
func mix(a, b uint64) uint64 {
	z := a ^ (b+0x9e3779b97f4a7c15)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
