package model

import (
	"context"
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// trainLosses trains a small GPT (3 layers, 4 heads, n_embd 64, block 48:
// two causal row blocks, vocabulary 65) for steps AdamW steps on a fixed
// learnable token stream and returns the losses. ref selects the reference
// layer loops on one goroutine; otherwise the fast kernels on threads.
// Every product runs on gemm.
func trainLosses(t *testing.T, steps int, ref bool, gemm blas.Float32, threads int) []float32 {
	t.Helper()
	cfg := Config{Arch: ArchGPT, NLayer: 3, NHead: 4, NEmbd: 64, BlockSize: 48, VocabSize: 65}.WithDefaults()
	g := mustGPT(t, cfg, 1337, WithCompute(Compute{GEMM: gemm, Threads: threads}))
	t.Cleanup(g.Close)
	g.useReference(ref)
	opt, err := NewAdamW(g.Params(), 0.9, 0.99, 0, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	const B, T = 6, 48
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	rng := newRNG(7, 3)
	losses := make([]float32, steps)
	for s := range steps {
		// A noisy affine sequence: the model has something to learn.
		for r := 0; r < B; r++ {
			tok := int32(rng.IntN(65))
			for i := 0; i <= T; i++ {
				next := (tok*7 + 3) % 65
				if rng.IntN(8) == 0 {
					next = int32(rng.IntN(65))
				}
				if i < T {
					b.Tokens[r*T+i] = tok
					b.Targets[r*T+i] = next
				}
				tok = next
			}
		}
		loss, err := g.Forward(context.Background(), b, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
		ClipGradNorm(g.Params().Grad, 1)
		opt.Step(g.Params(), 3e-3)
		g.Params().ZeroGrad()
		losses[s] = loss
	}
	return losses
}

// The fast path (packed SGEMM, vecmath kernels, parallel attention and
// activations) must follow the reference path's loss curve (gonum's pure-Go
// SGEMM, the plain float64-based layer loops, one goroutine) to 1e-4 over
// the first 50 steps.
func TestFastPathMatchesReferenceLosses(t *testing.T) {
	const steps = 50
	want := trainLosses(t, steps, true, gonum.Implementation{}, 1)
	type run struct {
		path    kernels.Path
		threads int
	}
	runs := []run{{kernels.Generic, 1}}
	for _, p := range []kernels.Path{kernels.AVX2, kernels.AVX512} {
		if kernels.Supported(p) {
			runs = append(runs, run{p, 3})
		}
	}
	for _, r := range runs {
		{
			p, threads := r.path, r.threads
			impl, err := kernels.New(kernels.Options{Path: p, Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			got := trainLosses(t, steps, false, impl, threads)
			_ = impl.Close()
			var worst, total float64
			for i := range got {
				d := math.Abs(float64(got[i] - want[i]))
				worst = math.Max(worst, d)
				total += d
				if d > 1e-4 || math.IsNaN(float64(got[i])) {
					t.Fatalf("gemm %s, %d threads: step %d loss %.6f, reference %.6f (diff %.2g)", p, threads, i, got[i], want[i], d)
				}
			}
			t.Logf("gemm %s, %d threads: loss %.4f → %.4f, max |Δloss| %.2g, Σ|Δloss| %.2g", p, threads, got[0], got[steps-1], worst, total)
		}
	}
	if want[steps-1] > want[0]-0.5 {
		t.Fatalf("reference loss %.4f → %.4f: the run does not learn, the comparison is vacuous", want[0], want[steps-1])
	}
}

// The fast attention (causal row blocks, vecmath softmax, serial or over
// workers) against the reference loops, forward and backward, on shapes
// with several row blocks, padding and cross-attention.
func TestAttentionFastMatchesReference(t *testing.T) {
	for _, hs := range []int{8, 6} { // SmallGemm heads (with assembly), sgemm heads
		testAttentionFast(t, hs)
	}
}

func testAttentionFast(t *testing.T, hs int) {
	const B, NH = 3, 3
	C := NH * hs
	cases := []struct {
		name   string
		T, S   int
		causal bool
		pad    bool
	}{
		{"causal", 2*attnRowBlock + 7, 2*attnRowBlock + 7, true, false},
		{"causal_padding", attnRowBlock + 5, attnRowBlock + 5, true, true},
		{"bidirectional", attnRowBlock + 9, attnRowBlock + 9, false, false},
		{"cross_padding", 17, attnRowBlock + 11, false, true},
		{"causal_more_keys", 17, attnRowBlock + 11, true, false}, // keys no query sees
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/hs%d", c.name, hs), func(t *testing.T) {
			rng := newRNG(5, 1)
			a := Attention{NHead: NH, HeadSize: hs, Causal: c.causal}
			var valid []uint8
			if c.pad {
				valid = make([]uint8, B*c.S)
				for i := range valid {
					valid[i] = uint8(min(1, rng.IntN(4)))
				}
				valid[c.S] = 0 // b=1: key 0 padded, so with causal its query 0 sees nothing
			}
			q := randSlice(rng, B*c.T*C, 1.5)
			k := randSlice(rng, B*c.S*C, 1.5)
			v := randSlice(rng, B*c.S*C, 1)
			dout := randSlice(rng, B*c.T*C, 1)
			dq0, dk0, dv0 := randSlice(rng, len(q), 0.1), randSlice(rng, len(k), 0.1), randSlice(rng, len(v), 0.1)
			type result struct{ out, att, dq, dk, dv []float32 }
			// run accumulates the gradients into dq0, dk0, dv0, or with
			// set overwrites NaN-filled ones.
			run := func(ex *exec, dq0, dk0, dv0 []float32, set bool) result {
				attN, scrN := a.Sizes(B, c.T, c.S)
				x := AttnArgs{B: B, T: c.T, S: c.S, Q: q, LDQ: C, K: k, V: v, LDKV: C, KeyValid: valid,
					Out: make([]float32, len(q)), LDO: C, Att: randSlice(rng, attN, 9), Scratch: randSlice(rng, scrN, 9)}
				r := result{out: x.Out, att: x.Att, dq: append([]float32(nil), dq0...), dk: append([]float32(nil), dk0...), dv: append([]float32(nil), dv0...)}
				if set {
					for _, g := range [][]float32{r.dq, r.dk, r.dv} {
						for i := range g {
							g[i] = float32(math.NaN())
						}
					}
				}
				a.forward(ex, nil, x, true)
				a.backward(ex, x, AttnGrads{DQ: r.dq, DK: r.dk, DV: r.dv, DOut: dout, Set: set}, true)
				return r
			}
			zq, zk, zv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
			wantAcc := run(&exec{ref: true}, dq0, dk0, dv0, false)
			wantSet := run(&exec{ref: true}, zq, zk, zv, false)
			pool := newWorkers(3)
			defer pool.close()
			for _, set := range []bool{false, true} {
				want := wantAcc
				if set {
					want = wantSet
				}
				for _, ex := range []*exec{{ref: true}, nil, {pool: pool}} {
					if ex.reference() && !set {
						continue
					}
					got := run(ex, dq0, dk0, dv0, set)
					for _, f := range []struct {
						name      string
						got, want []float32
					}{{"out", got.out, want.out}, {"att", got.att, want.att}, {"dq", got.dq, want.dq}, {"dk", got.dk, want.dk}, {"dv", got.dv, want.dv}} {
						if d := maxAbsDiff(f.got, f.want); !(d <= 2e-5) {
							t.Errorf("reference %v, workers %d, set %v: %s differs from the reference by %.3g", ex.reference(), ex.workers().size(), set, f.name, d)
						}
					}
				}
			}
		})
	}
}

// The fast LayerNorm (vecmath rows, serial or over workers with per-item
// dW/dB partials) against the float64 reference.
func TestLayerNormFastMatchesReference(t *testing.T) {
	const C, n = 40, 3*lnRows + 5
	pool := newWorkers(3)
	defer pool.close()
	for _, bias := range []bool{false, true} {
		rng := newRNG(9, 2)
		var bl Builder
		l := NewLayerNorm(&bl, "ln", C, 1e-5, bias)
		inp, dout := randSlice(rng, n*C, 2), randSlice(rng, n*C, 1)
		for i := range inp {
			inp[i] += 0.5 // a non-zero mean
		}
		type result struct{ out, mean, rstd, dinp, grad []float32 }
		run := func(ex *exec) result {
			p := paramsFor(t, &bl, newRNG(3, 3), 1)
			r := result{out: make([]float32, n*C), mean: make([]float32, n), rstd: make([]float32, n), dinp: randSlice(newRNG(4, 4), n*C, 1)}
			l.forward(ex, p, r.out, r.mean, r.rstd, inp, n)
			l.backward(ex, p, r.dinp, dout, inp, r.mean, r.rstd, n)
			r.grad = p.Grad
			return r
		}
		want := run(&exec{ref: true})
		for _, ex := range []*exec{nil, {pool: pool}} {
			got := run(ex)
			for _, f := range []struct {
				name      string
				got, want []float32
				tol       float64
			}{{"out", got.out, want.out, 2e-6}, {"mean", got.mean, want.mean, 1e-6}, {"rstd", got.rstd, want.rstd, 1e-6},
				{"dinp", got.dinp, want.dinp, 1e-5}, {"dW,dB", got.grad, want.grad, 1e-4}} {
				if d := maxAbsDiff(f.got, f.want); d > f.tol {
					t.Errorf("bias %v, workers %d: %s differs from the reference by %.3g", bias, ex.workers().size(), f.name, d)
				}
			}
		}
	}
}

// The fast cross-entropy (vecmath softmax) against the float64 reference.
func TestCrossEntropyFastMatchesReference(t *testing.T) {
	const n, V = 37, 65
	rng := newRNG(2, 9)
	logits := randSlice(rng, n*V, 8)
	targets := make([]int32, n)
	for i := range targets {
		targets[i] = int32(rng.IntN(V))
	}
	targets[3] = IgnoreIndex
	for _, denom := range []float32{0, 50} {
		wantP, gotP := make([]float32, n*V), make([]float32, n*V)
		wantL, wantD := CrossEntropy{V: V}.forwardRef(wantP, logits, targets, n, denom)
		gotL, gotD := CrossEntropy{V: V}.Forward(gotP, logits, targets, n, denom)
		if math.Abs(float64(gotL-wantL)) > 1e-6*math.Abs(float64(wantL)) || gotD != wantD {
			t.Errorf("denom %v: loss %v (denominator %v), reference %v (%v)", denom, gotL, gotD, wantL, wantD)
		}
		if d := maxAbsDiff(gotP, wantP); d > 1e-6 {
			t.Errorf("denom %v: probabilities differ from the reference by %.3g", denom, d)
		}
	}
}
