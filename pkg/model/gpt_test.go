package model

import (
	"context"
	"math"
	"strings"
	"testing"
)

func tinyGPTConfig() Config {
	return Config{Arch: ArchGPT, NLayer: 2, NHead: 2, NEmbd: 8, BlockSize: 5, VocabSize: 7, Bias: true}.WithDefaults()
}

func mustGPT(t testing.TB, cfg Config, seed int64, opts ...Option) *GPT {
	t.Helper()
	m, err := New(cfg, seed, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m.(*GPT)
}

func tinyBatch() *Batch {
	return &Batch{B: 2, T: 4,
		Tokens:  []int32{1, 4, 6, 0, 2, 2, 5, 3},
		Targets: []int32{4, 6, IgnoreIndex, 1, 2, 5, 3, 0}}
}

func TestGPTGradCheck(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		b    func(*Batch)
		h    float32 // finite-difference step (default 1e-2)
	}{
		{name: "bias_gelu"},
		{name: "nobias_gelu_tanh", mod: func(c *Config) { c.Bias = false; c.Activation = GELUTanh }},
		// ReLU's kink needs a smaller step; LossDenom 3 keeps the loss O(1).
		{name: "relu_lossdenom", mod: func(c *Config) { c.Activation = ReLU }, b: func(b *Batch) { b.LossDenom = 3 }, h: 1e-3},
		{name: "dropout", mod: func(c *Config) { c.Dropout = 0.2 }},
		{name: "full_block", b: func(b *Batch) {
			b.T = 5
			b.Tokens = []int32{1, 4, 6, 0, 3, 2, 2, 5, 3, 1}
			b.Targets = []int32{4, 6, 0, 3, 1, 2, 5, 3, 1, 6}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := tinyGPTConfig()
			if c.mod != nil {
				c.mod(&cfg)
			}
			g := mustGPT(t, cfg, 3)
			p := g.Params()
			rng := newRNG(11, 0)
			copy(p.Data, randSlice(rng, len(p.Data), 0.4)) // bigger than init: non-trivial gradients
			b := tinyBatch()
			if c.b != nil {
				c.b(b)
			}
			train := cfg.Dropout > 0
			h := c.h
			if h == 0 {
				h = 1e-2
			}
			loss := func() float64 {
				g.rng = newRNG(5, 1) // same dropout masks every call
				l, err := g.Forward(context.Background(), b, train)
				if err != nil {
					t.Fatal(err)
				}
				return float64(l)
			}
			loss()
			p.ZeroGrad()
			if err := g.Backward(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A sample of every tensor: its first 12 entries.
			for _, v := range p.Views {
				n := min(v.Size(), 12)
				x := p.Value(v)[:n]
				an := p.Gradient(v)[:n]
				checkGradGPT(t, v.Name, x, an, loss, h)
			}
		})
	}
}

// checkGradGPT is checkGrad with a tolerance for the whole float32 model.
// A component passes when |numeric − analytic| ≤ 2e-4 + 2e-2·|numeric|.
func checkGradGPT(t *testing.T, name string, x, analytic []float32, loss func() float64, h float32) {
	t.Helper()
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		lp := loss()
		x[i] = orig - h
		lm := loss()
		x[i] = orig
		num := (lp - lm) / (2 * float64(h))
		if diff := math.Abs(num - float64(analytic[i])); diff > 2e-4+2e-2*math.Abs(num) {
			t.Errorf("%s[%d]: numeric %.6g analytic %.6g", name, i, num, analytic[i])
		}
	}
}

func TestGPTNoAllocs(t *testing.T) {
	cfg := tinyGPTConfig()
	cfg.Dropout = 0.1
	g := mustGPT(t, cfg, 1)
	b := tinyBatch()
	step := func() {
		if _, err := g.Forward(context.Background(), b, true); err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step() // warm-up sizes the buffers
	if n := testing.AllocsPerRun(20, step); n != 0 {
		t.Fatalf("Forward+Backward allocated %v times per step after warm-up, want 0", n)
	}
	small := &Batch{B: 1, T: 2, Tokens: []int32{1, 2}, Targets: []int32{2, 3}}
	if n := testing.AllocsPerRun(5, func() {
		if _, err := g.Forward(context.Background(), small, true); err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("a smaller batch allocated %v times per step, want 0", n)
	}
}

func TestGPTLayoutAndInit(t *testing.T) {
	cfg := Config{Arch: ArchGPT, NLayer: 3, NHead: 4, NEmbd: 32, BlockSize: 16, VocabSize: 50}.WithDefaults()
	g := mustGPT(t, cfg, 42)
	p := g.Params()
	want := []string{"transformer.wte.weight", "transformer.wpe.weight",
		"transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight",
		"transformer.h.0.ln_2.weight", "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"}
	for i, n := range want {
		if p.Views[i].Name != n {
			t.Fatalf("view %d is %q, want %q", i, p.Views[i].Name, n)
		}
	}
	if last := p.Views[len(p.Views)-1].Name; last != "transformer.ln_f.weight" {
		t.Fatalf("last view %q", last)
	}
	// nanoGPT count: V·C + block·C + L·(12C² + 2C) + C without biases.
	C, L := 32, 3
	if got, want := p.NumParams(), 50*C+16*C+L*(12*C*C+2*C)+C; got != want {
		t.Fatalf("NumParams %d, want %d", got, want)
	}
	std := func(name string) float64 {
		v, _ := p.Lookup(name)
		var s float64
		for _, x := range p.Value(v) {
			s += float64(x) * float64(x)
		}
		return math.Sqrt(s / float64(v.Size()))
	}
	if s := std("transformer.h.1.mlp.c_fc.weight"); math.Abs(s-0.02) > 0.002 {
		t.Errorf("c_fc std %v, want 0.02", s)
	}
	if s, w := std("transformer.h.1.mlp.c_proj.weight"), 0.02/math.Sqrt(6); math.Abs(s-w) > 0.1*w {
		t.Errorf("c_proj std %v, want %v", s, w)
	}
	if v, _ := p.Lookup("transformer.ln_f.weight"); p.Value(v)[3] != 1 {
		t.Error("ln_f.weight not initialised to 1")
	}
	g2 := mustGPT(t, cfg, 42)
	if maxAbsDiff(p.Data, g2.Params().Data) != 0 {
		t.Error("same seed gave different parameters")
	}
	if g3 := mustGPT(t, cfg, 43); maxAbsDiff(p.Data, g3.Params().Data) == 0 {
		t.Error("different seeds gave identical parameters")
	}
}

func TestGPTBatchValidation(t *testing.T) {
	g := mustGPT(t, tinyGPTConfig(), 1)
	cases := []struct {
		name, want string
		b          *Batch
	}{
		{"too_long", "batch.T", &Batch{B: 1, T: 6, Tokens: make([]int32, 6)}},
		{"short_tokens", "batch.Tokens", &Batch{B: 2, T: 3, Tokens: make([]int32, 5)}},
		{"token_range", "batch.Tokens[1,0]", &Batch{B: 2, T: 2, Tokens: []int32{0, 1, 7, 2}}},
		{"target_range", "batch.Targets", &Batch{B: 1, T: 2, Tokens: []int32{0, 1}, Targets: []int32{-3, 1}}},
		{"rows", "batch.B", &Batch{B: 0, T: 2}},
		{"keyvalid", "KeyValid", &Batch{B: 1, T: 1, Tokens: []int32{0}, KeyValid: []uint8{1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := g.Forward(context.Background(), c.b, false)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
	if _, err := New(Config{Arch: ArchGPT, NLayer: 1, NHead: 1, NEmbd: 4, BlockSize: 4}, 1); err == nil ||
		!strings.Contains(err.Error(), "vocab_size") {
		t.Fatalf("missing vocab: %v", err)
	}
}

func TestGPTLogitsAndGreedy(t *testing.T) {
	g := mustGPT(t, tinyGPTConfig(), 1)
	b := tinyBatch()
	b.Targets = nil
	if loss, err := g.Forward(context.Background(), b, false); err != nil || loss != 0 {
		t.Fatalf("inference forward: %v %v", loss, err)
	}
	logits := append([]float32(nil), g.Logits()...)
	if len(logits) != 2*4*7 {
		t.Fatalf("logits length %d", len(logits))
	}
	// Causality: changing the last token must not change earlier positions' logits.
	b.Tokens[3] = 5
	if _, err := g.Forward(context.Background(), b, false); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(logits[:3*7], g.Logits()[:3*7]); d != 0 {
		t.Fatalf("future token changed past logits by %v", d)
	}
	// Greedy on two rows equals Generate with temperature 0 on each.
	prompts := []int32{1, 2, 3, 4, 5, 6}
	out, err := g.Greedy(context.Background(), prompts, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 2; r++ {
		seq, err := g.Generate(context.Background(), prompts[r*3:(r+1)*3], 4, 0, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ {
			if seq[3+i] != out[r*4+i] {
				t.Fatalf("row %d: greedy %v, generate %v", r, out[r*4:(r+1)*4], seq[3:])
			}
		}
	}
	// Sampling is deterministic for a seeded rng and top-1 equals greedy.
	s1, _ := g.Generate(context.Background(), []int32{1}, 6, 1, 0, newRNG(3, 3))
	s2, _ := g.Generate(context.Background(), []int32{1}, 6, 1, 0, newRNG(3, 3))
	top1, _ := g.Generate(context.Background(), []int32{1}, 6, 1, 1, newRNG(3, 3))
	greedy, _ := g.Generate(context.Background(), []int32{1}, 6, 0, 0, nil)
	for i := range s1 {
		if s1[i] != s2[i] || top1[i] != greedy[i] {
			t.Fatalf("sampling: %v vs %v, top1 %v vs greedy %v", s1, s2, top1, greedy)
		}
	}
}
