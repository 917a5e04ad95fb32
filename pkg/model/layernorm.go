package model

import (
	"math"

	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// LayerNorm normalises each row of C values: out = (x-mean)·rstd·w + b,
// rstd = 1/sqrt(var+Eps) with the biased variance (torch F.layer_norm).
// B is the zero View when the layer has no bias (nanoGPT bias=False).
type LayerNorm struct {
	W, B View
	C    int
	Eps  float32
}

// NewLayerNorm adds name.weight (c) and, if bias, name.bias (c) to b.
func NewLayerNorm(b *Builder, name string, c int, eps float64, bias bool) LayerNorm {
	l := LayerNorm{W: b.Add(name+".weight", c), C: c, Eps: float32(eps)}
	if bias {
		l.B = b.Add(name+".bias", c)
	}
	return l
}

// InitParams sets weight 1 and bias 0 (PyTorch's LayerNorm init).
func (l *LayerNorm) InitParams(p *Params) {
	p.initConst(l.W, 1)
	if l.B.Present() {
		p.initConst(l.B, 0)
	}
}

// Forward: inp and out are (N,C); mean and rstd (N) are saved for Backward.
// It runs vecmath's row kernels (float32 statistics); forwardRef is the
// float64 reference.
func (l *LayerNorm) Forward(p *Params, out, mean, rstd, inp []float32, n int) {
	l.forward(nil, p, out, mean, rstd, inp, n)
}

// Backward accumulates dinp (N,C), dW and dB from dout (N,C), using the
// input and the mean/rstd saved by Forward. It runs vecmath's row kernels;
// backwardRef is the reference.
func (l *LayerNorm) Backward(p *Params, dinp, dout, inp, mean, rstd []float32, n int) {
	l.backward(nil, p, dinp, dout, inp, mean, rstd, n)
}

// lnRows is the number of rows one item of a parallel LayerNorm loop covers.
const lnRows = 64

// lnJob is a LayerNorm Forward or Backward over items of lnRows rows. Item
// i of a Backward sums its dW, dB into partial[i] (fixed per item, so the
// result does not depend on which worker ran it); the caller adds them up.
type lnJob struct {
	l                    *LayerNorm
	w, b                 []float32
	out, mean, rstd, inp []float32
	dinp, dout           []float32
	n                    int
	back                 bool
	partial              []float32 // (items,2,C)
}

func (j *lnJob) run(i, _ int) {
	lo, hi := i*lnRows, min((i+1)*lnRows, j.n)
	if !j.back {
		j.l.forwardRows(j.w, j.b, j.out, j.mean, j.rstd, j.inp, lo, hi)
		return
	}
	C := j.l.C
	part := j.partial[2*i*C : 2*(i+1)*C]
	clear(part)
	var db []float32
	if j.b != nil {
		db = part[C:]
	}
	j.l.backwardRows(j.w, part[:C], db, j.dinp, j.dout, j.inp, j.mean, j.rstd, lo, hi)
}

func (l *LayerNorm) params(p *Params) (w, b []float32) {
	if l.B.Present() {
		b = p.Value(l.B)
	}
	return p.Value(l.W), b
}

func (l *LayerNorm) forward(ex *exec, p *Params, out, mean, rstd, inp []float32, n int) {
	switch {
	case ex.reference():
		l.forwardRef(p, out, mean, rstd, inp, n)
	case ex.workers() == nil || n < 2*lnRows:
		w, b := l.params(p)
		l.forwardRows(w, b, out, mean, rstd, inp, 0, n)
	default:
		w, b := l.params(p)
		ex.ln = lnJob{l: l, w: w, b: b, out: out, mean: mean, rstd: rstd, inp: inp, n: n}
		ex.pool.For((n+lnRows-1)/lnRows, &ex.ln)
		ex.ln = lnJob{}
	}
}

// forwardRows is the fast Forward of rows [lo,hi).
func (l *LayerNorm) forwardRows(w, b, out, mean, rstd, inp []float32, lo, hi int) {
	C := l.C
	vecmath.LayerNormForward(out[lo*C:hi*C], mean[lo:hi], rstd[lo:hi], inp[lo*C:hi*C], w, b, C, l.Eps)
}

func (l *LayerNorm) backward(ex *exec, p *Params, dinp, dout, inp, mean, rstd []float32, n int) {
	if ex.reference() {
		l.backwardRef(p, dinp, dout, inp, mean, rstd, n)
		return
	}
	w, b := l.params(p)
	dw := p.Gradient(l.W)
	var db []float32
	if b != nil {
		db = p.Gradient(l.B)
	}
	if ex.workers() == nil || n < 2*lnRows {
		l.backwardRows(w, dw, db, dinp, dout, inp, mean, rstd, 0, n)
		return
	}
	C, items := l.C, (n+lnRows-1)/lnRows
	if len(ex.lnPartial) < 2*C*items {
		ex.lnPartial = make([]float32, 2*C*items)
	}
	ex.ln = lnJob{l: l, w: w, b: b, dinp: dinp, dout: dout, inp: inp, mean: mean, rstd: rstd, n: n, back: true, partial: ex.lnPartial}
	ex.pool.For(items, &ex.ln)
	ex.ln = lnJob{}
	for i := 0; i < items; i++ {
		part := ex.lnPartial[2*i*C : 2*(i+1)*C]
		addTo(dw, part[:C])
		if db != nil {
			addTo(db, part[C:])
		}
	}
}

// backwardRows is the fast Backward of rows [lo,hi), accumulating into dw, db (nil: no bias).
func (l *LayerNorm) backwardRows(w, dw, db, dinp, dout, inp, mean, rstd []float32, lo, hi int) {
	C := l.C
	vecmath.LayerNormBackward(dinp[lo*C:hi*C], dw, db, dout[lo*C:hi*C], inp[lo*C:hi*C], w, mean[lo:hi], rstd[lo:hi], C)
}

// forwardRef is the reference Forward (float64 statistics).
func (l *LayerNorm) forwardRef(p *Params, out, mean, rstd, inp []float32, n int) {
	C := l.C
	w := p.Value(l.W)
	var bias []float32
	if l.B.Present() {
		bias = p.Value(l.B)
	}
	for i := 0; i < n; i++ {
		x := inp[i*C : (i+1)*C]
		var m float64
		for _, v := range x {
			m += float64(v)
		}
		m /= float64(C)
		var v2 float64
		for _, v := range x {
			d := float64(v) - m
			v2 += d * d
		}
		v2 /= float64(C)
		s := float32(1 / math.Sqrt(v2+float64(l.Eps)))
		mf := float32(m)
		o := out[i*C : (i+1)*C]
		for j, v := range x {
			o[j] = (v - mf) * s * w[j]
			if bias != nil {
				o[j] += bias[j]
			}
		}
		mean[i], rstd[i] = mf, s
	}
}

// backwardRef is the reference Backward.
func (l *LayerNorm) backwardRef(p *Params, dinp, dout, inp, mean, rstd []float32, n int) {
	C := l.C
	w := p.Value(l.W)
	dw := p.Gradient(l.W)
	var db []float32
	if l.B.Present() {
		db = p.Gradient(l.B)
	}
	for i := 0; i < n; i++ {
		x := inp[i*C : (i+1)*C]
		g := dout[i*C : (i+1)*C]
		di := dinp[i*C : (i+1)*C]
		m, s := mean[i], rstd[i]
		// dnorm = g·w; dx = rstd·(dnorm - mean(dnorm) - norm·mean(dnorm·norm))
		var dnMean, dnNormMean float32
		for j := range x {
			norm := (x[j] - m) * s
			dn := g[j] * w[j]
			dnMean += dn
			dnNormMean += dn * norm
		}
		dnMean /= float32(C)
		dnNormMean /= float32(C)
		for j := range x {
			norm := (x[j] - m) * s
			dn := g[j] * w[j]
			dw[j] += norm * g[j]
			if db != nil {
				db[j] += g[j]
			}
			di[j] += (dn - dnMean - norm*dnNormMean) * s
		}
	}
}
