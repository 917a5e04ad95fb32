package model

import "math"

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
func (l *LayerNorm) Forward(p *Params, out, mean, rstd, inp []float32, n int) {
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

// Backward accumulates dinp (N,C), dW and dB from dout (N,C), using the
// input and the mean/rstd saved by Forward.
func (l *LayerNorm) Backward(p *Params, dinp, dout, inp, mean, rstd []float32, n int) {
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
