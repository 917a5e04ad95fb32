package model

// Linear is y = x·Wᵀ + b with W stored as PyTorch's nn.Linear (Out,In).
// B is the zero View when the layer has no bias.
type Linear struct {
	W, B    View
	In, Out int
}

// NewLinear adds name.weight (out,in) and, if bias, name.bias (out) to b.
func NewLinear(b *Builder, name string, in, out int, bias bool) Linear {
	l := Linear{W: b.Add(name+".weight", out, in), In: in, Out: out}
	if bias {
		l.B = b.Add(name+".bias", out)
	}
	return l
}

// Forward: inp is (N,In), out is (N,Out); N = B·T rows.
func (l *Linear) Forward(p *Params, out, inp []float32, n int) {
	w := p.Value(l.W)
	beta := float32(0)
	if l.B.Present() {
		bias := p.Value(l.B)
		for i := 0; i < n; i++ {
			copy(out[i*l.Out:(i+1)*l.Out], bias)
		}
		beta = 1
	}
	gemmP(p, false, true, n, l.Out, l.In, 1, inp, l.In, w, l.In, beta, out, l.Out)
}

// Backward accumulates dinp (N,In) += dout·W, dW += doutᵀ·inp, db += Σ dout.
// dout is (N,Out), inp the (N,In) input of Forward. dinp may be nil (input needs no gradient).
func (l *Linear) Backward(p *Params, dinp, dout, inp []float32, n int) {
	l.backward(p, dinp, dout, inp, n, 1)
}

// backward is Backward with dinp = dout·W + beta·dinp (beta 0: dinp is
// overwritten, so callers need not clear it first).
func (l *Linear) backward(p *Params, dinp, dout, inp []float32, n int, beta float32) {
	if dinp != nil {
		gemmP(p, false, false, n, l.In, l.Out, 1, dout, l.Out, p.Value(l.W), l.In, beta, dinp, l.In)
	}
	gemmP(p, true, false, l.Out, l.In, n, 1, dout, l.Out, inp, l.In, 1, p.Gradient(l.W), l.In)
	if l.B.Present() {
		db := p.Gradient(l.B)
		for i := 0; i < n; i++ {
			row := dout[i*l.Out : (i+1)*l.Out]
			for j, g := range row {
				db[j] += g
			}
		}
	}
}
