package model

import "github.com/ringmaster-ml/ringmaster/pkg/vecmath"

// Embedding is a lookup table W (N,C): token embeddings, learned positions
// (nanoGPT wpe) and BERT token types.
type Embedding struct {
	W    View
	N, C int // rows (vocabulary or positions), width
}

// NewEmbedding adds name.weight (n,c) to b.
func NewEmbedding(b *Builder, name string, n, c int) Embedding {
	return Embedding{W: b.Add(name+".weight", n, c), N: n, C: c}
}

// Forward writes out (len(ids),C) = W[ids]. ids must be < N (validated by the caller).
func (e *Embedding) Forward(p *Params, out []float32, ids []int32) {
	w := p.Value(e.W)
	for i, id := range ids {
		copy(out[i*e.C:(i+1)*e.C], w[int(id)*e.C:int(id+1)*e.C])
	}
}

// ForwardAdd adds W[ids] to out (len(ids),C).
func (e *Embedding) ForwardAdd(p *Params, out []float32, ids []int32) {
	w := p.Value(e.W)
	for i, id := range ids {
		addTo(out[i*e.C:(i+1)*e.C], w[int(id)*e.C:int(id+1)*e.C])
	}
}

// Backward accumulates dW[ids[i]] += dout[i]; dout is (len(ids),C).
func (e *Embedding) Backward(p *Params, dout []float32, ids []int32) {
	dw := p.Gradient(e.W)
	for i, id := range ids {
		addTo(dw[int(id)*e.C:int(id+1)*e.C], dout[i*e.C:(i+1)*e.C])
	}
}

// ForwardPositions adds W[t] to every row t of out (B,T,C): learned positions 0..T-1.
func (e *Embedding) ForwardPositions(p *Params, out []float32, B, T int) {
	w := p.Value(e.W)
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			addTo(out[(b*T+t)*e.C:(b*T+t+1)*e.C], w[t*e.C:(t+1)*e.C])
		}
	}
}

// BackwardPositions accumulates dW[t] += Σ_b dout[b,t]; dout is (B,T,C).
func (e *Embedding) BackwardPositions(p *Params, dout []float32, B, T int) {
	dw := p.Gradient(e.W)
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			addTo(dw[t*e.C:(t+1)*e.C], dout[(b*T+t)*e.C:(b*T+t+1)*e.C])
		}
	}
}

// addTo does dst += src element-wise (len(src) ≤ len(dst)), on vecmath's
// kernel (the same sums as the plain loop).
func addTo(dst, src []float32) {
	dst = dst[:len(src)]
	vecmath.Add(dst, dst, src)
}
