package model

import (
	"fmt"
	"math"

	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// AdamW is torch.optim.AdamW on the flat parameter buffer: bias-corrected
// moments and decoupled weight decay p ← p − lr·wd·p applied only to views
// with Decay set (nanoGPT's ≥2-D rule). It updates the range [Lo,Hi) of the
// buffer; M and V hold the moments of that range (a ZeRO-1 shard holds a
// sub-range, a single process the whole buffer).
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64

	Lo, Hi int
	M, V   []float32 // (Hi−Lo) first and second moments
	Steps  int       // optimizer steps taken (torch state['step'])

	segs []adamSeg
}

type adamSeg struct {
	lo, hi int // absolute offsets in Params.Data
	decay  bool
}

// NewAdamW returns an optimizer for all of p. eps 0 means torch's default 1e-8.
func NewAdamW(p *Params, beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
	return NewAdamWRange(p, 0, len(p.Data), beta1, beta2, eps, weightDecay)
}

// NewAdamWRange returns an optimizer for the elements [lo,hi) of p.
func NewAdamWRange(p *Params, lo, hi int, beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
	if lo < 0 || hi > len(p.Data) || lo > hi {
		return nil, fmt.Errorf("adamw: range [%d,%d) outside the %d parameters", lo, hi, len(p.Data))
	}
	if beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1 {
		return nil, fmt.Errorf("adamw: beta1 %g and beta2 %g must be in [0,1)", beta1, beta2)
	}
	if eps == 0 {
		eps = 1e-8
	}
	if eps < 0 || weightDecay < 0 {
		return nil, fmt.Errorf("adamw: eps %g and weight_decay %g must be ≥ 0", eps, weightDecay)
	}
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, Lo: lo, Hi: hi,
		M: make([]float32, hi-lo), V: make([]float32, hi-lo)}
	for _, v := range p.Views {
		a, b := max(v.Offset, lo), min(v.End(), hi)
		if a < b {
			o.segs = append(o.segs, adamSeg{a, b, v.Decay})
		}
	}
	return o, nil
}

// Step applies one update with learning rate lr from p.Grad to p.Data on [Lo,Hi).
func (o *AdamW) Step(p *Params, lr float64) { o.StepOn(p, lr, 1, nil) }

// StepOn is Step with the range split into parts pieces run by run, which
// must call f(i) for every i in [0,n) and return when all have returned
// (the trainer's lane goroutines). The update is element-wise, so the
// result is the same bit for bit.
func (o *AdamW) StepOn(p *Params, lr float64, parts int, run func(n int, f func(i int))) {
	o.Steps++
	t := float64(o.Steps)
	k := adamCoeffs{
		lr: lr, b1: float32(o.Beta1), b2: float32(o.Beta2), eps: float32(o.Eps),
		stepSize: float32(lr / (1 - math.Pow(o.Beta1, t))),
		bc2Sqrt:  float32(math.Sqrt(1 - math.Pow(o.Beta2, t))),
	}
	parts = max(1, min(parts, (o.Hi-o.Lo)/1024)) // pieces of ≥ 1024 parameters
	if parts == 1 {
		o.update(p, k, o.Lo, o.Hi) // no goroutine, no allocation
		return
	}
	run(parts, func(i int) {
		o.update(p, k, o.Lo+i*(o.Hi-o.Lo)/parts, o.Lo+(i+1)*(o.Hi-o.Lo)/parts)
	})
}

// adamCoeffs are one step's constants.
type adamCoeffs struct {
	lr                             float64
	b1, b2, eps, stepSize, bc2Sqrt float32
}

// update applies the step to the parameters in [a,b).
func (o *AdamW) update(p *Params, k adamCoeffs, a, b int) {
	for _, s := range o.segs {
		lo, hi := max(s.lo, a), min(s.hi, b)
		if lo >= hi {
			continue
		}
		decay := float32(1)
		if s.decay {
			decay = float32(1 - k.lr*o.WeightDecay)
		}
		data, grad := p.Data[lo:hi], p.Grad[lo:hi]
		m, v := o.M[lo-o.Lo:hi-o.Lo], o.V[lo-o.Lo:hi-o.Lo]
		// Per element, in float32 and in this order (the kernel is
		// bit-identical to the plain loop, vecmath's tests check it):
		//   data *= decay; m = m·β1 + (1−β1)·g; v = v·β2 + (1−β2)·g·g
		//   data −= stepSize·m / (√v/bc2Sqrt + eps)
		vecmath.AdamW(data, grad, m, v, decay, k.b1, k.b2, k.stepSize, k.bc2Sqrt, k.eps)
	}
}

// GradNorm is the L2 norm of grad, accumulated in float64.
func GradNorm(grad []float32) float64 {
	return math.Sqrt(vecmath.SumSq64(grad))
}

// ClipGradNorm scales grad so its L2 norm is at most maxNorm (torch
// clip_grad_norm_: coefficient maxNorm/(norm+1e-6), applied when < 1) and
// returns the norm before clipping. maxNorm ≤ 0 only measures.
func ClipGradNorm(grad []float32, maxNorm float64) float64 {
	norm := GradNorm(grad)
	if maxNorm <= 0 {
		return norm
	}
	if c := maxNorm / (norm + 1e-6); c < 1 {
		vecmath.Scale(grad, float32(c))
	}
	return norm
}
