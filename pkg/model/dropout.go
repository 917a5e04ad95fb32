package model

import "math/rand/v2"

// Dropout zeroes each element with probability P in training and scales the
// survivors by 1/(1-P) (inverted dropout, torch nn.Dropout). The random
// generator is passed in by the owner (a model owns one seeded generator),
// so runs are deterministic.
type Dropout struct{ P float32 }

// Active reports whether Forward with this train flag drops anything.
func (d Dropout) Active(train bool) bool { return train && d.P > 0 }

// Forward: out = inp·mask (N). When active, mask (N) receives 0 or 1/(1-P)
// and is kept for Backward; otherwise out is a copy of inp and mask is unused.
// out may alias inp.
func (d Dropout) Forward(rng *rand.Rand, out, mask, inp []float32, train bool) {
	if !d.Active(train) {
		copy(out, inp)
		return
	}
	scale := 1 / (1 - d.P)
	for i, x := range inp {
		m := float32(0)
		if rng.Float32() >= d.P {
			m = scale
		}
		mask[i] = m
		out[i] = x * m
	}
}

// Backward accumulates dinp += dout·mask (or dout when Forward was not active).
func (d Dropout) Backward(dinp, dout, mask []float32, train bool) {
	if !d.Active(train) {
		addTo(dinp, dout)
		return
	}
	for i, g := range dout {
		dinp[i] += g * mask[i]
	}
}
