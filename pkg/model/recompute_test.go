package model

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

// recomputeRun trains a small GPT with dropout for steps AdamW steps with
// r and returns the losses, the gradients of the last step and the final
// parameters.
func recomputeRun(t *testing.T, r Recompute, opts ...Option) (losses []float32, grad, params []float32) {
	t.Helper()
	cfg := Config{Arch: ArchGPT, NLayer: 3, NHead: 4, NEmbd: 32, BlockSize: 16, VocabSize: 29, Dropout: 0.1, Bias: true}.WithDefaults()
	g := mustGPT(t, cfg, 11, append(opts, WithRecompute(r))...)
	t.Cleanup(g.Close)
	opt, err := NewAdamW(g.Params(), 0.9, 0.95, 1e-8, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	rng := newRNG(3, 5)
	const B, T = 4, 16
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for step := range 6 {
		for i := range b.Tokens {
			b.Tokens[i], b.Targets[i] = int32(rng.IntN(29)), int32(rng.IntN(29))
		}
		loss, err := g.Forward(context.Background(), b, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
		losses = append(losses, loss)
		if step == 5 {
			grad = slices.Clone(g.Params().Grad)
		}
		opt.Step(g.Params(), 1e-3)
		g.Params().ZeroGrad()
	}
	// An evaluation pass in between training steps draws nothing.
	if _, err := g.Forward(context.Background(), b, false); err != nil {
		t.Fatal(err)
	}
	return losses, grad, slices.Clone(g.Params().Data)
}

// Recomputing the MLP or the whole block in Backward gives the same bits as
// keeping every activation: losses over six steps with dropout (so the
// replayed draws matter, and every later step depends on the generators
// being where Forward left them), the last step's gradients, the final
// parameters.
func TestRecomputeIsBitIdentical(t *testing.T) {
	wantL, wantG, wantP := recomputeRun(t, RecomputeNone)
	if wantL[5] == wantL[0] || math.IsNaN(float64(wantL[5])) {
		t.Fatalf("reference losses %v: the run does not move", wantL)
	}
	for _, r := range []Recompute{RecomputeMLP, RecomputeBlock} {
		gotL, gotG, gotP := recomputeRun(t, r)
		if !slices.Equal(gotL, wantL) {
			t.Errorf("recompute %s: losses %v, keeping everything %v", r, gotL, wantL)
		}
		if !slices.Equal(gotG, wantG) {
			t.Errorf("recompute %s: the last step's gradients differ (max |Δ| %g)", r, maxAbsDiff(gotG, wantG))
		}
		if !slices.Equal(gotP, wantP) {
			t.Errorf("recompute %s: final parameters differ (max |Δ| %g)", r, maxAbsDiff(gotP, wantP))
		}
	}
}

// What each mode keeps: block holds one block's work space and every
// block's output; mlp drops the per-block (N, n_hidden) pair.
func TestRecomputeKeepsLess(t *testing.T) {
	cfg := Config{Arch: ArchGPT, NLayer: 4, NHead: 4, NEmbd: 32, BlockSize: 16, VocabSize: 29}.WithDefaults()
	floats := func(r Recompute) int {
		g := mustGPT(t, cfg, 1, WithRecompute(r))
		g.ensure(4, 16)
		n := 0
		seen := map[*float32]bool{}
		add := func(s []float32) {
			if len(s) > 0 && !seen[&s[0]] {
				seen[&s[0]] = true
				n += len(s)
			}
		}
		for _, la := range g.acts.layers {
			for _, s := range [][]float32{la.ln1, la.ln1Mean, la.ln1Rstd, la.qkv, la.att, la.attMask, la.atty, la.proj, la.projMask,
				la.res1, la.ln2, la.ln2Mean, la.ln2Rstd, la.fch, la.fchAct, la.fcProj, la.fcProjMask, la.res2} {
				add(s)
			}
		}
		for _, s := range g.acts.blockOut {
			add(s)
		}
		return n
	}
	none, mlp, block := floats(RecomputeNone), floats(RecomputeMLP), floats(RecomputeBlock)
	N, C, H, L := 4*16, 32, 128, 4
	if none-mlp != 2*(L-1)*N*H {
		t.Errorf("mlp keeps %d floats, none %d: want %d fewer (the other blocks' c_fc output and activation)", mlp, none, 2*(L-1)*N*H)
	}
	if perBlock := none / L; block != perBlock+L*N*C {
		t.Errorf("block keeps %d floats, want one block's %d + %d block outputs of %d", block, perBlock, L, N*C)
	}
	t.Logf("activation floats per step: none %d, mlp %d, block %d", none, mlp, block)
}

func TestRecomputeOnlyForGPT(t *testing.T) {
	for _, cfg := range []Config{tinyBERTConfig(), tinyEncDecConfig()} {
		_, err := New(cfg, 1, WithRecompute(RecomputeBlock))
		if err == nil || !strings.Contains(err.Error(), "train.recompute: block is implemented for model.arch gpt") {
			t.Errorf("%s: %v, want a train.recompute error", cfg.Arch, err)
		}
	}
	if _, err := ParseRecompute("blocks"); err == nil || !strings.Contains(err.Error(), "none, mlp, block") {
		t.Errorf("ParseRecompute(blocks): %v", err)
	}
}
