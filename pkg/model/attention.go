package model

import (
	"math"
	"math/rand/v2"
)

// Attention is the multi-head scaled-dot-product core, softmax(q·kᵀ/√hs + mask)·v,
// on row-major activations. Head h of a row uses columns [h·HeadSize,
// (h+1)·HeadSize) of q, k, v and out, so a fused c_attn output (B,T,3C) is
// passed as three offset slices with row stride 3C.
//
// NHead is the number of heads this layer holds, independent of n_embd: a
// tensor-parallel rank holding heads [r·H/t,(r+1)·H/t) builds an Attention
// with NHead = H/t and the same HeadSize.
//
// Masks: Causal hides keys j > i; KeyValid (B,S) hides padded keys (0); both
// can be combined. Cross-attention is the same call with S ≠ T (queries from
// the decoder, keys/values from the encoder). A query row with no visible key
// gets all-zero probabilities (output 0, no gradient) instead of NaN.
type Attention struct {
	NHead, HeadSize int
	Causal          bool
	Dropout         Dropout // on the attention probabilities (nanoGPT attn_dropout)
}

// AttnArgs are the tensors of one attention call. Row strides (LD*) are in
// elements; the column offset of head 0 is the start of each slice.
type AttnArgs struct {
	B, T, S int // batch rows, query length, key/value length (S = T for self-attention)

	Q    []float32 // (B,T,LDQ)
	LDQ  int
	K, V []float32 // (B,S,LDKV)
	LDKV int
	Out  []float32 // (B,T,LDO) written by Forward
	LDO  int

	KeyValid []uint8 // (B,S) 1 = real key, 0 = padding; nil = all real

	Att     []float32 // (B,NHead,T,S) softmax probabilities, written by Forward, read by Backward
	Mask    []float32 // (B,NHead,T,S) dropout mask; only used when dropout is active
	Scratch []float32 // (2,T,S) work space
}

// AttnGrads are the gradient tensors of Backward, laid out like AttnArgs
// (DQ with LDQ, DK/DV with LDKV, DOut with LDO). DQ, DK, DV are accumulated.
type AttnGrads struct {
	DQ, DK, DV, DOut []float32
}

// Sizes returns the lengths Att (and Mask) and Scratch need for a call.
func (a *Attention) Sizes(B, T, S int) (att, scratch int) {
	return B * a.NHead * T * S, 2 * T * S
}

func (a *Attention) scale() float32 { return float32(1 / math.Sqrt(float64(a.HeadSize))) }

// Forward computes Out and saves Att (and Mask when dropout is active).
func (a *Attention) Forward(rng *rand.Rand, x AttnArgs, train bool) {
	T, S, hs := x.T, x.S, a.HeadSize
	drop := a.Dropout.Active(train)
	for b := 0; b < x.B; b++ {
		var valid []uint8
		if x.KeyValid != nil {
			valid = x.KeyValid[b*S : (b+1)*S]
		}
		for h := 0; h < a.NHead; h++ {
			att := x.Att[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
			q := x.Q[b*T*x.LDQ+h*hs:]
			k := x.K[b*S*x.LDKV+h*hs:]
			v := x.V[b*S*x.LDKV+h*hs:]
			sgemm(false, true, T, S, hs, a.scale(), q, x.LDQ, k, x.LDKV, 0, att, S)
			for i := 0; i < T; i++ {
				a.maskedSoftmax(att[i*S:(i+1)*S], valid, i)
			}
			src := att
			if drop {
				mask := x.Mask[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
				src = x.Scratch[:T*S]
				a.Dropout.Forward(rng, src, mask, att, true)
			}
			sgemm(false, false, T, hs, S, 1, src, S, v, x.LDKV, 0, x.Out[b*T*x.LDO+h*hs:], x.LDO)
		}
	}
}

// maskedSoftmax replaces the scores of query row i by probabilities over the
// visible keys; hidden keys get exactly 0 (as exp(-inf)).
func (a *Attention) maskedSoftmax(row []float32, valid []uint8, i int) {
	visible := func(j int) bool {
		return (!a.Causal || j <= i) && (valid == nil || valid[j] != 0)
	}
	mx := float32(math.Inf(-1))
	for j, s := range row {
		if visible(j) {
			mx = max(mx, s)
		}
	}
	if math.IsInf(float64(mx), -1) {
		clear(row) // no visible key: defined as zeros
		return
	}
	var z float32
	for j, s := range row {
		if visible(j) {
			e := float32(math.Exp(float64(s - mx)))
			row[j] = e
			z += e
		} else {
			row[j] = 0
		}
	}
	inv := 1 / z
	for j := range row {
		row[j] *= inv
	}
}

// Backward accumulates DQ, DK, DV from DOut, using Att (and Mask) saved by
// Forward. train must be the flag Forward was called with.
func (a *Attention) Backward(x AttnArgs, g AttnGrads, train bool) {
	T, S, hs := x.T, x.S, a.HeadSize
	drop := a.Dropout.Active(train)
	sc := a.scale()
	for b := 0; b < x.B; b++ {
		for h := 0; h < a.NHead; h++ {
			att := x.Att[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
			q := x.Q[b*T*x.LDQ+h*hs:]
			k := x.K[b*S*x.LDKV+h*hs:]
			v := x.V[b*S*x.LDKV+h*hs:]
			dq := g.DQ[b*T*x.LDQ+h*hs:]
			dk := g.DK[b*S*x.LDKV+h*hs:]
			dv := g.DV[b*S*x.LDKV+h*hs:]
			dout := g.DOut[b*T*x.LDO+h*hs:]
			src := att
			var mask []float32
			if drop {
				mask = x.Mask[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
				src = x.Scratch[:T*S]
				for i, p := range att {
					src[i] = p * mask[i]
				}
			}
			dp := x.Scratch[T*S : 2*T*S]
			sgemm(false, true, T, S, hs, 1, dout, x.LDO, v, x.LDKV, 0, dp, S)   // dP' = dOut·Vᵀ
			sgemm(true, false, S, hs, T, 1, src, S, dout, x.LDO, 1, dv, x.LDKV) // dV += P'ᵀ·dOut
			if drop {
				for i := range dp {
					dp[i] *= mask[i]
				}
			}
			for i := 0; i < T; i++ {
				p := att[i*S : (i+1)*S]
				d := dp[i*S : (i+1)*S]
				var dot float32
				for j := range p {
					dot += p[j] * d[j]
				}
				for j := range p {
					d[j] = p[j] * (d[j] - dot)
				}
			}
			sgemm(false, false, T, hs, S, sc, dp, S, k, x.LDKV, 1, dq, x.LDQ) // dQ += s·dS·K
			sgemm(true, false, S, hs, T, sc, dp, S, q, x.LDQ, 1, dk, x.LDKV)  // dK += s·dSᵀ·Q
		}
	}
}
