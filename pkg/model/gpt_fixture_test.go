package model

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

// gptFixture is what testdata/gen_gpt_fixture.py writes (PyTorch 1.13, nanoGPT model).
type gptFixture struct {
	Config  Config `json:"config"`
	Weights string `json:"weights"`
	B, T    int
	Tokens  []int32 `json:"tokens"`
	Targets []int32 `json:"targets"`
	Loss    float64 `json:"loss"`
	Logits  []float32
	Grads   map[string]struct {
		Head []float32
		Norm float64
	} `json:"grads"`
	GradNorm  float64              `json:"grad_norm"`
	AdamW     adamFixture          `json:"adamw"`
	AfterStep map[string][]float32 `json:"after_step"`
	Greedy    struct{ Prompt, Out []int32 }
}

type adamFixture struct {
	LR          float64 `json:"lr"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	GradClip    float64 `json:"grad_clip"`
}

// Tolerances against PyTorch (float32 on both sides, different summation order).
const (
	fixLossRtol = 1e-5
	fixAbs      = 2e-5 // logits, gradient entries, updated parameters
	fixNormRtol = 1e-4 // gradient norms
)

func TestGPTMatchesPyTorch(t *testing.T) {
	for _, tag := range []string{"bias", "nobias"} {
		t.Run(tag, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "gpt_"+tag+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var fx gptFixture
			if err := json.Unmarshal(raw, &fx); err != nil {
				t.Fatal(err)
			}
			g := mustGPT(t, fx.Config, 0)
			p := g.Params()
			if err := LoadFile(filepath.Join("testdata", fx.Weights), p); err != nil {
				t.Fatal(err)
			}
			loss, err := g.Forward(context.Background(), &Batch{B: fx.B, T: fx.T, Tokens: fx.Tokens, Targets: fx.Targets}, true)
			if err != nil {
				t.Fatal(err)
			}
			if rel := math.Abs(float64(loss)-fx.Loss) / fx.Loss; rel > fixLossRtol {
				t.Errorf("loss %.7f, torch %.7f (rel %.2g)", loss, fx.Loss, rel)
			}
			if d := maxAbsDiff(g.Logits(), fx.Logits); d > fixAbs || len(g.Logits()) != len(fx.Logits) {
				t.Errorf("logits differ from torch by %.3g", d)
			}
			p.ZeroGrad()
			if err := g.Backward(context.Background()); err != nil {
				t.Fatal(err)
			}
			if len(fx.Grads) != len(p.Views) {
				t.Fatalf("torch has %d parameters, we have %d views", len(fx.Grads), len(p.Views))
			}
			for name, want := range fx.Grads {
				v, ok := p.Lookup(name)
				if !ok {
					t.Fatalf("no view %q", name)
				}
				gr := p.Gradient(v)
				if d := maxAbsDiff(gr[:len(want.Head)], want.Head); d > fixAbs {
					t.Errorf("grad %s head differs by %.3g: %v vs %v", name, d, gr[:4], want.Head[:4])
				}
				if n := GradNorm(gr); math.Abs(n-want.Norm) > fixNormRtol*want.Norm+1e-7 {
					t.Errorf("grad %s norm %v, torch %v", name, n, want.Norm)
				}
			}
			a := fx.AdamW
			norm := ClipGradNorm(p.Grad, a.GradClip)
			if math.Abs(norm-fx.GradNorm) > fixNormRtol*fx.GradNorm {
				t.Errorf("grad norm %v, torch %v", norm, fx.GradNorm)
			}
			opt, err := NewAdamW(p, a.Beta1, a.Beta2, a.Eps, a.WeightDecay)
			if err != nil {
				t.Fatal(err)
			}
			opt.Step(p, a.LR)
			for name, want := range fx.AfterStep {
				v, _ := p.Lookup(name)
				if d := maxAbsDiff(p.Value(v)[:len(want)], want); d > fixAbs {
					t.Errorf("after AdamW %s differs by %.3g", name, d)
				}
			}
			// Greedy decoding (context cropped past block_size) matches torch argmax.
			if err := LoadFile(filepath.Join("testdata", fx.Weights), p); err != nil {
				t.Fatal(err)
			}
			out, err := g.Greedy(context.Background(), fx.Greedy.Prompt, 1, len(fx.Greedy.Out))
			if err != nil {
				t.Fatal(err)
			}
			for i := range out {
				if out[i] != fx.Greedy.Out[i] {
					t.Fatalf("greedy %v, torch %v", out, fx.Greedy.Out)
				}
			}
		})
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	g := mustGPT(t, tinyGPTConfig(), 9)
	p := g.Params()
	var buf bytes.Buffer
	if err := Export(&buf, p, map[string]string{"arch": "gpt"}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Get("lm_head.weight"); ok {
		t.Fatal("tied lm_head.weight exported twice")
	}
	h := mustGPT(t, tinyGPTConfig(), 10)
	if err := Import(h.Params(), f); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(p.Data, h.Params().Data); d != 0 {
		t.Fatalf("round trip changed parameters by %v", d)
	}
}

func TestImportRejects(t *testing.T) {
	g := mustGPT(t, tinyGPTConfig(), 9)
	p := g.Params()
	base := func() []safetensors.Tensor {
		var ts []safetensors.Tensor
		for _, x := range p.Tensors() {
			ts = append(ts, safetensors.Tensor{Name: x.Name, Shape: x.Shape, Data: append([]float32(nil), x.Data...)})
		}
		return ts
	}
	wte, _ := p.Lookup("transformer.wte.weight")
	cases := []struct {
		name, want string
		edit       func([]safetensors.Tensor) []safetensors.Tensor
	}{
		{"missing", `"transformer.ln_f.weight": missing; want shape [8]`, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return ts[:len(ts)-2]
		}},
		{"unexpected", `"transformer.h.9.ln_1.weight": unexpected`, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "transformer.h.9.ln_1.weight", Shape: []int{8}, Data: make([]float32, 8)})
		}},
		{"shape", `"transformer.wpe.weight": shape [4 8], want [5 8]`, func(ts []safetensors.Tensor) []safetensors.Tensor {
			ts[1] = safetensors.Tensor{Name: ts[1].Name, Shape: []int{4, 8}, Data: ts[1].Data[:32]}
			return ts
		}},
		{"tied_differs", `"lm_head.weight": differs`, func(ts []safetensors.Tensor) []safetensors.Tensor {
			d := append([]float32(nil), ts[0].Data...)
			d[3]++
			return append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: wte.Shape, Data: d})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := append([]float32(nil), p.Data...)
			err := Import(p, &safetensors.File{Tensors: c.edit(base())})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %s", err, c.want)
			}
			if maxAbsDiff(before, p.Data) != 0 {
				t.Fatal("failed Import modified the parameters")
			}
		})
	}
	// An equal tied copy is accepted.
	ts := append(base(), safetensors.Tensor{Name: "lm_head.weight", Shape: wte.Shape, Data: append([]float32(nil), p.Value(wte)...)})
	if err := Import(p, &safetensors.File{Tensors: ts}); err != nil {
		t.Fatalf("equal tied lm_head.weight rejected: %v", err)
	}
}
