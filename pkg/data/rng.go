package data

import (
	"math/bits"
	"math/rand/v2"
)

// Streams separate the uses of randomness so they never share a generator.
const (
	streamTrain   uint64 = 1 // Fill: training batches, keyed by train.seed
	streamEval    uint64 = 2 // FillEval: fixed loss-estimate batches, keyed by train.eval_seed
	streamHeldOut uint64 = 3 // held-out problem sets, keyed by train.eval_seed
)

// mix is splitmix64's finaliser: a bijective 64-bit hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// rowRNG is the generator of one row of one global batch. It is a value type
// (no allocation) with the few draws the samplers need.
type rowRNG struct{ pcg rand.PCG }

// newRowRNG seeds a PCG from a hash of (seed, stream, split, step, row).
func newRowRNG(seed int64, stream uint64, split Split, step int64, row int) rowRNG {
	h := mix(uint64(seed))
	h = mix(h ^ stream)
	h = mix(h ^ uint64(split))
	h = mix(h ^ uint64(step))
	h = mix(h ^ uint64(row))
	var r rowRNG
	r.pcg.Seed(h, mix(h^0x5851f42d4c957f2d))
	return r
}

// newSeqRNG is a sequential generator for building fixed sets at Open time.
func newSeqRNG(seed int64, stream uint64) *rand.Rand {
	h := mix(mix(uint64(seed)) ^ stream)
	return rand.New(rand.NewPCG(h, mix(h^0x5851f42d4c957f2d)))
}

// intN returns a uniform integer in [0, n), n > 0 (Lemire's method, unbiased).
func (r *rowRNG) intN(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.pcg.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.pcg.Uint64(), un)
		}
	}
	return int(hi)
}

// float64 returns a uniform value in [0, 1).
func (r *rowRNG) float64() float64 { return float64(r.pcg.Uint64()>>11) / (1 << 53) }
