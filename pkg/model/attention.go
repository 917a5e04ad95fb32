package model

import (
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"

	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
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
	Scratch []float32 // work space of Attention.ScratchSize(T,S)

	GEMM blas.Float32 // the products' implementation (the model's, see Compute); nil: gonum's reference
}

// AttnGrads are the gradient tensors of Backward, laid out like AttnArgs
// (DQ with LDQ, DK/DV with LDKV, DOut with LDO). DQ, DK, DV are accumulated,
// or overwritten when Set (the caller need not clear them first).
type AttnGrads struct {
	DQ, DK, DV, DOut []float32
	Set              bool
}

// clearHeads zeroes columns [0, NHead·HeadSize) of rows rows of m (row
// stride ld): the part of a gradient tensor this layer's heads own.
func (a *Attention) clearHeads(m []float32, rows, ld int) {
	w := a.NHead * a.HeadSize
	for i := 0; i < rows; i++ {
		clear(m[i*ld : i*ld+w])
	}
}

// Sizes returns the lengths Att (and Mask) and Scratch need for a call.
func (a *Attention) Sizes(B, T, S int) (att, scratch int) {
	return B * a.NHead * T * S, a.ScratchSize(T, S)
}

// ScratchSize is the length of AttnArgs.Scratch for T queries and S keys:
// two (T,S) blocks and one (HeadSize,S) transposed key or value block.
func (a *Attention) ScratchSize(T, S int) int { return 2*T*S + a.HeadSize*S }

// partScratch is the scratch one participant of the parallel fast path
// needs: a (T,S) block for dP and a (HeadSize,S) transposed operand.
func (a *Attention) partScratch(T, S int) int { return T*S + a.HeadSize*S }

func (a *Attention) scale() float32 { return float32(1 / math.Sqrt(float64(a.HeadSize))) }

// Forward computes Out and saves Att (and Mask when dropout is active).
func (a *Attention) Forward(rng *rand.Rand, x AttnArgs, train bool) { a.forward(nil, rng, x, train) }

// Backward accumulates DQ, DK, DV from DOut, using Att (and Mask) saved by
// Forward. train must be the flag Forward was called with.
func (a *Attention) Backward(x AttnArgs, g AttnGrads, train bool) { a.backward(nil, x, g, train) }

// attnRowBlock is the number of query rows per GEMM in the fast path: a
// causal block of rows [i0,i1) only needs keys [0,i1), so smaller blocks
// skip more of the masked upper triangle, at the price of more, smaller
// GEMMs.
const attnRowBlock = 16

// attnJob is one fast Forward or Backward; item i is the (batch row, head)
// pair (i/NHead, i%NHead). Pairs write disjoint parts of Out, DQ, DK, DV.
type attnJob struct {
	a       *Attention
	x       AttnArgs
	g       AttnGrads
	back    bool
	scratch []float32 // (participants, partScratch)
}

func (j *attnJob) run(i, w int) {
	b, h := i/j.a.NHead, i%j.a.NHead
	ts, per := j.x.T*j.x.S, j.a.partScratch(j.x.T, j.x.S)
	mine := j.scratch[w*per : (w+1)*per]
	if j.back {
		j.a.backwardHead(j.x, j.g, b, h, mine[:ts], mine[ts:])
	} else {
		j.a.forwardHead(j.x, b, h, mine[ts:])
	}
}

// gemm is c = alpha·op(a)·b + beta·c for the products of one head: P·V,
// Pᵀ·dOut, dS·K, dSᵀ·Q, and Q·Kᵀ, dOut·Vᵀ with Kᵀ, Vᵀ copied out
// (transposeHead). With the assembly and a head size in multiples of 8 it
// runs on vecmath.SmallGemm, which reads op(a) in place (no packing);
// otherwise on sgemm.
func (a *Attention) gemm(impl blas.Float32, ta bool, m, n, k int, alpha float32, am []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !vecmath.HasAsm() || a.HeadSize%8 != 0 {
		sgemm(impl, ta, false, m, n, k, alpha, am, lda, b, ldb, beta, c, ldc)
		return
	}
	if ta {
		vecmath.SmallGemm(m, n, k, alpha, am, 1, lda, b, ldb, beta, c, ldc)
	} else {
		vecmath.SmallGemm(m, n, k, alpha, am, lda, 1, b, ldb, beta, c, ldc)
	}
}

// softmaxRows turns the scores of rows [i0,i1) into probabilities: the
// reference masked softmax with a padding mask, else vecmath's over the
// causally visible keys (all S without the causal mask), hidden keys
// exactly 0.
func (a *Attention) softmaxRows(att []float32, valid []uint8, i0, i1, S int) {
	if valid != nil {
		for i := i0; i < i1; i++ {
			a.maskedSoftmax(att[i*S:(i+1)*S], valid, i) // reads only the visible (computed) scores
		}
		return
	}
	step := 0
	if a.Causal {
		step = 1
	}
	vecmath.SoftmaxRows(att[i0*S:i1*S], S, i1-i0, a.keysFor(i0+1, S), step)
}

// forward runs the reference loops when dropout is active (its mask draws
// follow the reference order) or ex asks for them, else the fast path:
// (batch row, head) pairs in parallel on ex's workers, causal blocks
// skipping masked keys, vecmath's softmax.
func (a *Attention) forward(ex *exec, rng *rand.Rand, x AttnArgs, train bool) {
	if ex.reference() || a.Dropout.Active(train) {
		a.forwardRef(rng, x, train)
		return
	}
	if ex.workers() == nil {
		kt := x.Scratch[2*x.T*x.S : a.ScratchSize(x.T, x.S)]
		for i := 0; i < x.B*a.NHead; i++ {
			a.forwardHead(x, i/a.NHead, i%a.NHead, kt)
		}
		return
	}
	ex.attn = attnJob{a: a, x: x, scratch: ex.attnScratch(a.partScratch(x.T, x.S))}
	ex.pool.For(x.B*a.NHead, &ex.attn)
	ex.attn = attnJob{}
}

// keysFor is the number of keys rows [·,i1) can see: all S, or i1 when causal.
func (a *Attention) keysFor(i1, S int) int {
	if a.Causal {
		return min(i1, S)
	}
	return S
}

// small reports whether the head's products run on vecmath.SmallGemm.
func (a *Attention) small() bool { return vecmath.HasAsm() && a.HeadSize%8 == 0 }

// transposeHead copies the (S,hs) block m (row stride ld) into t as (hs,S),
// so that products with keys as columns (Q·Kᵀ, dOut·Vᵀ) read a plain
// operand.
func transposeHead(t, m []float32, S, hs, ld int) { vecmath.Transpose(t, m, S, hs, ld) }

// forwardHead is the fast forward of one (batch row, head) pair; kt is
// (HeadSize,S) scratch for Kᵀ.
func (a *Attention) forwardHead(x AttnArgs, b, h int, kt []float32) {
	T, S, hs := x.T, x.S, a.HeadSize
	att := x.Att[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
	q := x.Q[b*T*x.LDQ+h*hs:]
	k := x.K[b*S*x.LDKV+h*hs:]
	v := x.V[b*S*x.LDKV+h*hs:]
	out := x.Out[b*T*x.LDO+h*hs:]
	var valid []uint8
	if x.KeyValid != nil {
		valid = x.KeyValid[b*S : (b+1)*S]
	}
	small := a.small()
	if small {
		transposeHead(kt, k, S, hs, x.LDKV)
	}
	for i0 := 0; i0 < T; i0 += attnRowBlock {
		i1 := min(i0+attnRowBlock, T)
		kv := a.keysFor(i1, S)
		if small {
			a.gemm(x.GEMM, false, i1-i0, kv, hs, a.scale(), q[i0*x.LDQ:], x.LDQ, kt, S, 0, att[i0*S:], S) // s·Q·Kᵀ
		} else {
			sgemm(x.GEMM, false, true, i1-i0, kv, hs, a.scale(), q[i0*x.LDQ:], x.LDQ, k, x.LDKV, 0, att[i0*S:], S)
		}
		a.softmaxRows(att, valid, i0, i1, S)
		a.gemm(x.GEMM, false, i1-i0, hs, kv, 1, att[i0*S:], S, v, x.LDKV, 0, out[i0*x.LDO:], x.LDO) // P·V
	}
}

// backward mirrors forward's choice of path. Only the fast path writes
// the gradients without reading them first (g.Set); the others accumulate
// into cleared ones.
func (a *Attention) backward(ex *exec, x AttnArgs, g AttnGrads, train bool) {
	if ex.reference() || a.Dropout.Active(train) {
		if g.Set {
			a.clearHeads(g.DQ, x.B*x.T, x.LDQ)
			a.clearHeads(g.DK, x.B*x.S, x.LDKV)
			a.clearHeads(g.DV, x.B*x.S, x.LDKV)
		}
		a.backwardRef(x, g, train)
		return
	}
	if ex.workers() == nil {
		ts := x.T * x.S
		for i := 0; i < x.B*a.NHead; i++ {
			a.backwardHead(x, g, i/a.NHead, i%a.NHead, x.Scratch[ts:2*ts], x.Scratch[2*ts:a.ScratchSize(x.T, x.S)])
		}
		return
	}
	ex.attn = attnJob{a: a, x: x, g: g, back: true, scratch: ex.attnScratch(a.partScratch(x.T, x.S))}
	ex.pool.For(x.B*a.NHead, &ex.attn)
	ex.attn = attnJob{}
}

// backwardHead is the fast backward of one (batch row, head) pair; dp is a
// (T,S) scratch block, vt (HeadSize,S) scratch for Vᵀ.
func (a *Attention) backwardHead(x AttnArgs, g AttnGrads, b, h int, dp, vt []float32) {
	T, S, hs := x.T, x.S, a.HeadSize
	sc := a.scale()
	att := x.Att[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
	q := x.Q[b*T*x.LDQ+h*hs:]
	k := x.K[b*S*x.LDKV+h*hs:]
	v := x.V[b*S*x.LDKV+h*hs:]
	dq := g.DQ[b*T*x.LDQ+h*hs:]
	dk := g.DK[b*S*x.LDKV+h*hs:]
	dv := g.DV[b*S*x.LDKV+h*hs:]
	dout := g.DOut[b*T*x.LDO+h*hs:]
	small := a.small()
	if small {
		transposeHead(vt, v, S, hs, x.LDKV)
	}
	// Row blocks from the last: with causal masking it sees every key, so
	// with g.Set its products set dK and dV (beta 0) and the earlier blocks
	// add to them. Each block's dQ rows are its own.
	setQ, setKV := float32(1), float32(1)
	if g.Set {
		setQ, setKV = 0, 0
	}
	for i0 := (T - 1) / attnRowBlock * attnRowBlock; i0 >= 0; i0 -= attnRowBlock {
		i1 := min(i0+attnRowBlock, T)
		rows, kv := i1-i0, a.keysFor(i1, S)
		if setKV == 0 && kv < S { // keys no block sees get no gradient
			for j := kv; j < S; j++ {
				clear(dk[j*x.LDKV : j*x.LDKV+hs])
				clear(dv[j*x.LDKV : j*x.LDKV+hs])
			}
		}
		if small {
			a.gemm(x.GEMM, false, rows, kv, hs, 1, dout[i0*x.LDO:], x.LDO, vt, S, 0, dp[i0*S:], S) // dP = dOut·Vᵀ
		} else {
			sgemm(x.GEMM, false, true, rows, kv, hs, 1, dout[i0*x.LDO:], x.LDO, v, x.LDKV, 0, dp[i0*S:], S)
		}
		a.gemm(x.GEMM, true, kv, hs, rows, 1, att[i0*S:], S, dout[i0*x.LDO:], x.LDO, setKV, dv, x.LDKV) // dV += Pᵀ·dOut
		softmaxGradRows(att, dp, i0, i1, S, kv)
		a.gemm(x.GEMM, false, rows, hs, kv, sc, dp[i0*S:], S, k, x.LDKV, setQ, dq[i0*x.LDQ:], x.LDQ) // dQ += s·dS·K
		a.gemm(x.GEMM, true, kv, hs, rows, sc, dp[i0*S:], S, q[i0*x.LDQ:], x.LDQ, setKV, dk, x.LDKV) // dK += s·dSᵀ·Q
		setKV = 1
	}
}

// softmaxGradRows turns dP into dS = P ⊙ (dP − rowsum(P ⊙ dP)) for rows
// [i0,i1) over their first kv keys (P is 0 beyond them).
func softmaxGradRows(att, dp []float32, i0, i1, S, kv int) {
	for i := i0; i < i1; i++ {
		vecmath.SoftmaxGrad(att[i*S:i*S+kv], dp[i*S:i*S+kv])
	}
}

// forwardRef is the reference Forward: two full GEMMs per pair, float64 exp.
func (a *Attention) forwardRef(rng *rand.Rand, x AttnArgs, train bool) {
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
			sgemm(x.GEMM, false, true, T, S, hs, a.scale(), q, x.LDQ, k, x.LDKV, 0, att, S)
			for i := 0; i < T; i++ {
				a.maskedSoftmax(att[i*S:(i+1)*S], valid, i)
			}
			src := att
			if drop {
				mask := x.Mask[(b*a.NHead+h)*T*S : (b*a.NHead+h+1)*T*S]
				src = x.Scratch[:T*S]
				a.Dropout.Forward(rng, src, mask, att, true)
			}
			sgemm(x.GEMM, false, false, T, hs, S, 1, src, S, v, x.LDKV, 0, x.Out[b*T*x.LDO+h*hs:], x.LDO)
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

// backwardRef is the reference Backward.
func (a *Attention) backwardRef(x AttnArgs, g AttnGrads, train bool) {
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
			sgemm(x.GEMM, false, true, T, S, hs, 1, dout, x.LDO, v, x.LDKV, 0, dp, S)   // dP' = dOut·Vᵀ
			sgemm(x.GEMM, true, false, S, hs, T, 1, src, S, dout, x.LDO, 1, dv, x.LDKV) // dV += P'ᵀ·dOut
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
			sgemm(x.GEMM, false, false, T, hs, S, sc, dp, S, k, x.LDKV, 1, dq, x.LDQ) // dQ += s·dS·K
			sgemm(x.GEMM, true, false, S, hs, T, sc, dp, S, q, x.LDQ, 1, dk, x.LDKV)  // dK += s·dSᵀ·Q
		}
	}
}
