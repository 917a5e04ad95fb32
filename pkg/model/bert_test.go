package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

// torchFixture is a PyTorch reference run written by
// testdata/gen_bert_fixture.py or testdata/gen_encdec_fixture.py: the forward
// and backward pass in float64 on float32 parameters.
type torchFixture struct {
	Config       Config    `json:"config"`
	Batch        fxBatch   `json:"batch"`
	Loss         float64   `json:"loss"`
	LogitsShape  []int     `json:"logits_shape"`
	Logits       []float64 `json:"logits"`
	ClassLogits  []float64 `json:"class_logits"`
	BOS          int32     `json:"bos"`
	EOS          int32     `json:"eos"`
	PAD          int32     `json:"pad"`
	GreedyMaxLen int       `json:"greedy_max_len"`
	Greedy       []int32   `json:"greedy"`
}

type fxBatch struct {
	B, T, S     int
	Tokens      []int32 `json:"tokens"`
	Targets     []int32 `json:"targets"`
	KeyValid    []int   `json:"key_valid"`
	TokenTypes  []int32 `json:"token_types"`
	Src         []int32 `json:"src"`
	SrcValid    []int   `json:"src_valid"`
	ClassLabels []int32 `json:"class_labels"`
}

func fxFlags(v []int) []uint8 {
	if v == nil {
		return nil
	}
	out := make([]uint8, len(v))
	for i, x := range v {
		out[i] = uint8(x)
	}
	return out
}

func (f fxBatch) batch() *Batch {
	return &Batch{B: f.B, T: f.T, S: f.S, Tokens: f.Tokens, Targets: f.Targets, KeyValid: fxFlags(f.KeyValid),
		TokenTypes: f.TokenTypes, Src: f.Src, SrcValid: fxFlags(f.SrcValid), ClassLabels: f.ClassLabels}
}

// loadTorchFixture reads testdata/<name>.json and the weights and gradients
// safetensors files next to it.
func loadTorchFixture(t *testing.T, name string) (fx torchFixture, weights, grads *safetensors.File) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatalf("%s.json: %v", name, err)
	}
	if weights, err = safetensors.ReadFile(filepath.Join("testdata", name+"_weights.safetensors")); err != nil {
		t.Fatal(err)
	}
	if grads, err = safetensors.ReadFile(filepath.Join("testdata", name+"_grads.safetensors")); err != nil {
		t.Fatal(err)
	}
	return fx, weights, grads
}

// loadViews copies every tensor of f into p by view name; the two manifests
// must match exactly (same names, same shapes).
func loadViews(t *testing.T, p *Params, f *safetensors.File) {
	t.Helper()
	if len(f.Tensors) != len(p.Views) {
		var names []string
		for _, v := range p.Views {
			names = append(names, v.Name)
		}
		t.Fatalf("fixture has %d tensors, model has %d views: %s", len(f.Tensors), len(p.Views), strings.Join(names, " "))
	}
	for _, v := range p.Views {
		tn, ok := f.Get(v.Name)
		if !ok {
			t.Fatalf("fixture has no tensor %q", v.Name)
		}
		if fmt.Sprint(tn.Shape) != fmt.Sprint(v.Shape) {
			t.Fatalf("%s: fixture shape %v, model shape %v", v.Name, tn.Shape, v.Shape)
		}
		copy(p.Value(v), tn.Data)
	}
}

// checkVsTorch fails when max|got-want| > tol·max(1, max|want|) and returns the
// scaled error.
func checkVsTorch(t *testing.T, what string, got []float32, want []float64, tol float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	var maxDiff, maxRef float64
	worst := 0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if d > maxDiff || math.IsNaN(d) {
			maxDiff, worst = d, i
		}
		maxRef = max(maxRef, math.Abs(want[i]))
	}
	scaled := maxDiff / max(1, maxRef)
	if !(scaled <= tol) {
		t.Errorf("%s: max |diff| %.3g (scale %.3g) at %d: got %g want %g; tolerance %g", what, maxDiff, max(1, maxRef), worst, got[worst], want[worst], tol)
	}
	return scaled
}

// checkGradsVsTorch compares every parameter gradient with the fixture's, each
// tensor scaled by its own largest reference entry: max|diff| ≤ tol·max|ref| +
// 1e-6. The absolute 1e-6 covers gradients that are exactly 0 in exact
// arithmetic and float32 round-off in Go (the attention key biases: softmax
// is invariant to a shift shared by all keys).
func checkGradsVsTorch(t *testing.T, p *Params, grads *safetensors.File, tol float64) {
	t.Helper()
	worst, worstName := 0.0, ""
	for _, v := range p.Views {
		g, ok := grads.Get(v.Name)
		if !ok {
			t.Fatalf("fixture has no gradient %q", v.Name)
		}
		got := p.Gradient(v)
		var maxDiff, maxRef float64
		for i, w := range g.Data {
			maxDiff = max(maxDiff, math.Abs(float64(got[i]-w)))
			maxRef = max(maxRef, math.Abs(float64(w)))
		}
		rel := maxDiff / max(maxRef, 1e-6)
		if !(maxDiff <= tol*maxRef+1e-6) {
			t.Errorf("grad %s: max |diff| %.3g vs max |ref| %.3g (rel %.3g > %g)", v.Name, maxDiff, maxRef, rel, tol)
		}
		if rel > worst && maxRef > 1e-6 {
			worst, worstName = rel, v.Name
		}
	}
	t.Logf("worst gradient relative error %.3g (%s)", worst, worstName)
}

func TestBERTMatchesPyTorch(t *testing.T) {
	for _, name := range []string{"bert", "bert_cls"} {
		t.Run(name, func(t *testing.T) {
			fx, weights, grads := loadTorchFixture(t, name)
			m, err := NewBERT(fx.Config, 1)
			if err != nil {
				t.Fatal(err)
			}
			loadViews(t, m.Params(), weights)
			b := fx.Batch.batch()
			loss, err := m.Forward(context.Background(), b, false)
			if err != nil {
				t.Fatal(err)
			}
			rel := math.Abs(float64(loss)-fx.Loss) / fx.Loss
			if rel > 1e-5 {
				t.Errorf("loss %.7f, PyTorch %.7f (rel %.2g > 1e-5)", loss, fx.Loss, rel)
			}
			t.Logf("loss %.7f, PyTorch %.7f (rel %.2g)", loss, fx.Loss, rel)
			t.Logf("MLM logits max scaled error %.3g", checkVsTorch(t, "MLM logits", m.Logits(), fx.Logits, 1e-4))
			if fx.Config.NClasses > 0 {
				checkVsTorch(t, "class logits", m.ClassLogits(), fx.ClassLogits, 1e-4)
			}
			m.Params().ZeroGrad()
			if err := m.Backward(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkGradsVsTorch(t, m.Params(), grads, 1e-4)
		})
	}
}

// perturbParams sets every parameter to a random non-trivial value (weights
// ~ 1/√fan_in, biases and LayerNorm offsets ~0.2), so that gradient checks
// exercise every path.
func perturbParams(p *Params, seed int64) {
	rng := newRNG(seed, 7)
	for _, v := range p.Views {
		d := p.Value(v)
		for i := range d {
			r := rng.NormFloat64()
			switch {
			case len(v.Shape) >= 2:
				d[i] = float32(r / math.Sqrt(float64(v.Shape[len(v.Shape)-1])))
			case strings.Contains(v.Name, "LayerNorm.weight") || strings.Contains(v.Name, ".ln") && strings.HasSuffix(v.Name, "weight"):
				d[i] = float32(1 + 0.3*r)
			default:
				d[i] = float32(0.2 * r)
			}
		}
	}
}

// gradCheck compares the analytic gradient with central finite differences
// (in float64 arithmetic on the float32 loss) on a few coordinates of every
// tensor: the largest-gradient entry and two pseudo-random ones. The loss is
// evaluated by lossAt, which must be deterministic (it resets any dropout
// generator itself).
func gradCheck(t *testing.T, p *Params, lossAt func() float32, analytic []float32, h, tol float64) {
	t.Helper()
	var worst float64
	for vi, v := range p.Views {
		g := analytic[v.Offset:v.End()]
		idx := []int{0, (7*vi + 3) % len(g), (13*vi + 5) % len(g)}
		for i, x := range g {
			if math.Abs(float64(x)) > math.Abs(float64(g[idx[0]])) {
				idx[0] = i
			}
		}
		data := p.Value(v)
		for _, i := range idx {
			orig := data[i]
			data[i] = orig + float32(h)
			lp := lossAt()
			data[i] = orig - float32(h)
			lm := lossAt()
			data[i] = orig
			step := float64(orig+float32(h)) - float64(orig-float32(h)) // the step float32 actually took
			fd := (float64(lp) - float64(lm)) / step
			an := float64(g[i])
			err := math.Abs(fd-an) / max(math.Abs(fd), math.Abs(an), 1e-2)
			worst = max(worst, err)
			if err > tol {
				t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g (rel %.3g > %g)", v.Name, i, an, fd, err, tol)
			}
		}
	}
	t.Logf("worst finite-difference relative error %.3g", worst)
}

func tinyBERTConfig() Config {
	return Config{Arch: ArchBERT, NLayer: 2, NHead: 2, NEmbd: 8, NHidden: 16, BlockSize: 6, VocabSize: 7,
		LayerNormEps: 1e-5, NClasses: 3}
}

func tinyBERTBatch() *Batch {
	return &Batch{B: 2, T: 5,
		Tokens:      []int32{5, 1, 6, 2, 3, 5, 6, 0, 4, 4},
		Targets:     []int32{-1, 4, 2, -1, 0, -1, 1, -1, -1, -1},
		KeyValid:    []uint8{1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
		TokenTypes:  []int32{0, 0, 1, 1, 1, 0, 0, 1, 0, 0},
		ClassLabels: []int32{2, 0},
	}
}

func TestBERTGradientFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropout float64
		act     Activation
	}{
		{"no dropout", 0, ""},
		{"dropout 0.2, exact gelu", 0.2, GELU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyBERTConfig()
			cfg.Dropout, cfg.Activation = tc.dropout, tc.act
			m, err := NewBERT(cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			perturbParams(m.Params(), 11)
			b := tinyBERTBatch()
			lossAt := func() float32 {
				m.rng = newRNG(99, 1) // the same dropout masks for every evaluation
				loss, err := m.Forward(context.Background(), b, true)
				if err != nil {
					t.Fatal(err)
				}
				return loss
			}
			lossAt()
			m.Params().ZeroGrad()
			if err := m.Backward(context.Background()); err != nil {
				t.Fatal(err)
			}
			analytic := append([]float32(nil), m.Params().Grad...)
			gradCheck(t, m.Params(), lossAt, analytic, 1e-2, 2e-2)
		})
	}
}

func TestBERTLossDenom(t *testing.T) {
	m, err := NewBERT(tinyBERTConfig(), 5)
	if err != nil {
		t.Fatal(err)
	}
	perturbParams(m.Params(), 2)
	b := tinyBERTBatch()
	b.ClassLabels = nil
	mean, err := m.Forward(context.Background(), b, false)
	if err != nil {
		t.Fatal(err)
	}
	b.LossDenom = 10 // 4 targets: the sum over 10
	sum10, err := m.Forward(context.Background(), b, false)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(sum10)-float64(mean)*4/10) > 1e-6 {
		t.Errorf("LossDenom 10 gives %g, want mean %g · 4/10", sum10, mean)
	}
}

func TestBERTPaddingIsInvisible(t *testing.T) {
	// Changing the token under a padded position must not change any
	// prediction made at a real position.
	m, err := NewBERT(tinyBERTConfig(), 4)
	if err != nil {
		t.Fatal(err)
	}
	perturbParams(m.Params(), 4)
	b := tinyBERTBatch()
	if _, err := m.Forward(context.Background(), b, false); err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), m.Logits()...)
	b.Tokens[8], b.Tokens[9] = 0, 1 // padded positions of row 1
	b.TokenTypes[9] = 1
	if _, err := m.Forward(context.Background(), b, false); err != nil {
		t.Fatal(err)
	}
	for i, v := range m.Logits() {
		if v != before[i] {
			t.Fatalf("logit %d changed from %g to %g when only padding changed", i, before[i], v)
		}
	}
}

func TestBERTInit(t *testing.T) {
	cfg := Config{Arch: ArchBERT, NLayer: 1, NHead: 4, NEmbd: 64, BlockSize: 32, VocabSize: 100}
	m, err := NewBERT(cfg, 1337)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Params()
	// normal(0, 0.02) truncated at ±2σ has std 0.02·0.8796.
	wantStd := 0.02 * 0.87962566
	for _, name := range []string{"embeddings.word_embeddings.weight", "layers.0.intermediate.weight", "layers.0.attention.query.weight"} {
		v, ok := p.Lookup(name)
		if !ok {
			t.Fatalf("no view %q", name)
		}
		var s, s2, mx float64
		d := p.Value(v)
		for _, x := range d {
			s += float64(x)
			s2 += float64(x) * float64(x)
			mx = max(mx, math.Abs(float64(x)))
		}
		n := float64(len(d))
		mean, std := s/n, math.Sqrt(s2/n-(s/n)*(s/n))
		if math.Abs(std-wantStd)/wantStd > 0.05 || math.Abs(mean) > 0.002 || mx > 0.04 {
			t.Errorf("%s: mean %.4f std %.5f max|x| %.4f; want mean 0, std %.5f (±5%%), max ≤ 0.04", name, mean, std, mx, wantStd)
		}
		if !v.Decay {
			t.Errorf("%s: a matrix must be weight-decayed", name)
		}
	}
	for _, v := range p.Views {
		d := p.Value(v)
		switch {
		case strings.HasSuffix(v.Name, "LayerNorm.weight"):
			for _, x := range d {
				if x != 1 {
					t.Fatalf("%s: want all 1, got %g", v.Name, x)
				}
			}
		case strings.HasSuffix(v.Name, "bias"):
			for _, x := range d {
				if x != 0 {
					t.Fatalf("%s: want all 0, got %g", v.Name, x)
				}
			}
			if v.Decay {
				t.Errorf("%s: a bias must not be weight-decayed", v.Name)
			}
		}
	}
}

func TestBERTNoAllocsAfterWarmup(t *testing.T) {
	cfg := tinyBERTConfig()
	cfg.Dropout = 0.1
	m, err := NewBERT(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := tinyBERTBatch()
	step := func() {
		if _, err := m.Forward(context.Background(), b, true); err != nil {
			t.Fatal(err)
		}
		if err := m.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := testing.AllocsPerRun(5, step); n != 0 {
		t.Errorf("Forward+Backward allocates %v times per step after warm-up, want 0", n)
	}
}

func TestBERTRejectsBadBatches(t *testing.T) {
	m, err := NewBERT(tinyBERTConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(b *Batch)
		field string
	}{
		{"token out of vocabulary", func(b *Batch) { b.Tokens[3] = 7 }, "batch.Tokens[0,3]"},
		{"negative target", func(b *Batch) { b.Targets[0] = -5 }, "batch.Targets[0,0]"},
		{"too long", func(b *Batch) { b.T = 10; b.B = 1 }, "batch.T"},
		{"short key mask", func(b *Batch) { b.KeyValid = b.KeyValid[:3] }, "batch.KeyValid"},
		{"segment id", func(b *Batch) { b.TokenTypes[1] = 2 }, "batch.TokenTypes[0,1]"},
		{"class label", func(b *Batch) { b.ClassLabels[1] = 3 }, "batch.ClassLabels[1,0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tinyBERTBatch()
			tc.edit(b)
			_, err := m.Forward(context.Background(), b, false)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}

func TestNewDispatchesBERTAndEncDec(t *testing.T) {
	bert, err := New(tinyBERTConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := bert.(*BERT); !ok {
		t.Errorf("New(arch bert) returned %T", bert)
	}
	ed, err := New(tinyEncDecConfig(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ed.(*EncDec); !ok {
		t.Errorf("New(arch encdec) returned %T", ed)
	}
	if got := ed.Config().NDecLayer; got != 1 {
		t.Errorf("encdec n_dec_layer %d, want 1", got)
	}
}
