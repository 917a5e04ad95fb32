package model

import (
	"math"
	"testing"
)

// naiveAttention is the plain-loop float64 reference: per (b,h,i), softmax
// over visible keys of q·k/√hs, times v; a row with no visible key is 0.
func naiveAttention(a Attention, x AttnArgs) []float64 {
	hs := a.HeadSize
	out := make([]float64, x.B*x.T*a.NHead*hs)
	for b := 0; b < x.B; b++ {
		for h := 0; h < a.NHead; h++ {
			for i := 0; i < x.T; i++ {
				scores := make([]float64, x.S)
				vis := make([]bool, x.S)
				mx := math.Inf(-1)
				for j := 0; j < x.S; j++ {
					vis[j] = (!a.Causal || j <= i) && (x.KeyValid == nil || x.KeyValid[b*x.S+j] == 1)
					if !vis[j] {
						continue
					}
					for d := 0; d < hs; d++ {
						scores[j] += float64(x.Q[(b*x.T+i)*x.LDQ+h*hs+d]) * float64(x.K[(b*x.S+j)*x.LDKV+h*hs+d])
					}
					scores[j] /= math.Sqrt(float64(hs))
					mx = math.Max(mx, scores[j])
				}
				var z float64
				for j := range scores {
					if vis[j] {
						scores[j] = math.Exp(scores[j] - mx)
						z += scores[j]
					}
				}
				for j := range scores {
					if !vis[j] {
						continue
					}
					for d := 0; d < hs; d++ {
						out[(b*x.T+i)*a.NHead*hs+h*hs+d] += scores[j] / z * float64(x.V[(b*x.S+j)*x.LDKV+h*hs+d])
					}
				}
			}
		}
	}
	return out
}

func TestAttention(t *testing.T) {
	const B, NH, hs = 2, 2, 3
	const C = NH * hs
	cases := []struct {
		name     string
		T, S     int
		causal   bool
		valid    []uint8
		fused    bool    // q,k,v from one (B,T,3C) buffer as GPT's c_attn
		dropout  float32 // gradient check only
		zeroRows [][2]int
	}{
		{name: "causal", T: 4, S: 4, causal: true, fused: true},
		{name: "bidirectional_padding", T: 4, S: 4, valid: []uint8{1, 1, 1, 0, 0, 0, 0, 0},
			zeroRows: [][2]int{{1, 0}, {1, 1}, {1, 2}, {1, 3}}}, // row b=1 has no real key
		{name: "cross_padding", T: 3, S: 5, valid: []uint8{1, 1, 1, 1, 1, 1, 1, 0, 0, 0}},
		{name: "cross", T: 3, S: 5},
		{name: "causal_padding", T: 4, S: 4, causal: true, valid: []uint8{1, 1, 1, 0, 0, 1, 1, 1},
			zeroRows: [][2]int{{1, 0}}}, // query 0 of b=1 sees only key 0, which is padding
		{name: "causal_dropout", T: 4, S: 4, causal: true, fused: true, dropout: 0.3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := newRNG(7, 0)
			a := Attention{NHead: NH, HeadSize: hs, Causal: c.causal, Dropout: Dropout{P: c.dropout}}
			attN, scrN := a.Sizes(B, c.T, c.S)
			x := AttnArgs{B: B, T: c.T, S: c.S, KeyValid: c.valid, LDO: C,
				Out: make([]float32, B*c.T*C), Att: make([]float32, attN), Mask: make([]float32, attN),
				Scratch: make([]float32, scrN)}
			var qBuf, kvBuf []float32
			if c.fused {
				qBuf = randSlice(rng, B*c.T*3*C, 1.5)
				kvBuf = qBuf
				x.Q, x.K, x.V, x.LDQ, x.LDKV = qBuf, qBuf[C:], qBuf[2*C:], 3*C, 3*C
			} else {
				qBuf = randSlice(rng, B*c.T*C, 1.5)
				kvBuf = randSlice(rng, B*c.S*2*C, 1.5)
				x.Q, x.K, x.V, x.LDQ, x.LDKV = qBuf, kvBuf, kvBuf[C:], C, 2*C
			}
			train := c.dropout > 0
			fwd := func() {
				rng := newRNG(99, 0) // same dropout mask on every call
				a.Forward(rng, x, train)
			}
			fwd()
			for _, v := range x.Out {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatal("non-finite attention output")
				}
			}
			if !train {
				ref := naiveAttention(a, x)
				for i, v := range x.Out {
					if math.Abs(float64(v)-ref[i]) > 1e-5 {
						t.Fatalf("out[%d] = %v, reference %v", i, v, ref[i])
					}
				}
			}
			for _, zr := range c.zeroRows {
				for _, v := range x.Out[(zr[0]*c.T+zr[1])*C : (zr[0]*c.T+zr[1]+1)*C] {
					if v != 0 {
						t.Fatalf("row %v with no visible key: output %v, want 0", zr, v)
					}
				}
			}
			r := randSlice(rng, len(x.Out), 1)
			loss := func() float64 { fwd(); return dot64(x.Out, r) }
			dq := make([]float32, len(qBuf))
			dkv := dq
			g := AttnGrads{DQ: dq, DOut: r}
			if c.fused {
				g.DK, g.DV = dq[C:], dq[2*C:]
			} else {
				dkv = make([]float32, len(kvBuf))
				g.DK, g.DV = dkv, dkv[C:]
			}
			fwd()
			a.Backward(x, g, train)
			checkGradH(t, "dq", qBuf, dq, loss, 1e-2)
			if !c.fused {
				checkGradH(t, "dkv", kvBuf, dkv, loss, 1e-2)
			}
		})
	}
}

// A layer holding a subset of the heads (tensor-parallel rank) computes
// exactly those heads' columns of the full layer, forward and backward.
func TestAttentionHeadSubset(t *testing.T) {
	const B, T, NH, hs = 2, 4, 4, 3
	const C = NH * hs
	rng := newRNG(8, 0)
	qkv := randSlice(rng, B*T*3*C, 1)
	dout := randSlice(rng, B*T*C, 1)
	run := func(a Attention, off int) (out, dqkv []float32) {
		attN, scrN := a.Sizes(B, T, T)
		out, dqkv = make([]float32, B*T*C), make([]float32, B*T*3*C)
		x := AttnArgs{B: B, T: T, S: T, Q: qkv[off:], K: qkv[C+off:], V: qkv[2*C+off:], LDQ: 3 * C, LDKV: 3 * C,
			Out: out[off:], LDO: C, Att: make([]float32, attN), Scratch: make([]float32, scrN)}
		a.Forward(nil, x, false)
		a.Backward(x, AttnGrads{DQ: dqkv[off:], DK: dqkv[C+off:], DV: dqkv[2*C+off:], DOut: dout[off:]}, false)
		return out, dqkv
	}
	full, dfull := run(Attention{NHead: NH, HeadSize: hs, Causal: true}, 0)
	// Rank 1 of 2 owns heads 2 and 3: columns [6,12) of q, k, v and out.
	part, dpart := run(Attention{NHead: NH / 2, HeadSize: hs, Causal: true}, 2*hs)
	for r := 0; r < B*T; r++ {
		for c := 2 * hs; c < C; c++ {
			if full[r*C+c] != part[r*C+c] {
				t.Fatalf("out[%d,%d]: full %v, subset %v", r, c, full[r*C+c], part[r*C+c])
			}
			for s := 0; s < 3; s++ {
				if i := r*3*C + s*C + c; dfull[i] != dpart[i] {
					t.Fatalf("dqkv[%d,%d,%d]: full %v, subset %v", r, s, c, dfull[i], dpart[i])
				}
			}
		}
	}
}
