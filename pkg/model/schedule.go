package model

import "math"

// Schedule is nanoGPT's get_lr: linear warmup LR·(it+1)/(WarmupIters+1) for
// it < WarmupIters, then cosine decay from LR to MinLR reaching MinLR at
// DecayIters, MinLR after it. Constant makes it LR at every iteration
// (nanoGPT decay_lr=False). DecayIters ≤ WarmupIters means MinLR right after warmup.
type Schedule struct {
	LR, MinLR               float64
	WarmupIters, DecayIters int
	Constant                bool
}

// At returns the learning rate of iteration it (0-based optimizer step).
func (s Schedule) At(it int) float64 {
	if s.Constant {
		return s.LR
	}
	if it < s.WarmupIters {
		return s.LR * float64(it+1) / float64(s.WarmupIters+1)
	}
	if it > s.DecayIters || s.DecayIters <= s.WarmupIters {
		return s.MinLR
	}
	ratio := float64(it-s.WarmupIters) / float64(s.DecayIters-s.WarmupIters)
	coeff := 0.5 * (1 + math.Cos(math.Pi*ratio))
	return s.MinLR + coeff*(s.LR-s.MinLR)
}
