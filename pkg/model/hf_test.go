package model

import (
	"context"
	oexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

func hfTestConfig() Config {
	return Config{Arch: ArchGPT, NLayer: 2, NHead: 4, NEmbd: 32, BlockSize: 16, VocabSize: 50, Bias: true, Activation: GELUTanh}.WithDefaults()
}

// TestHFGPT2LayoutLoadsToTheSameModel: a GPT's weights, rewritten in Hugging
// Face's GPT-2 layout by an independent script, load into a model with other
// random weights and give the identical loss; and ToHFGPT2 writes the
// layout the script does.
func TestHFGPT2LayoutLoadsToTheSameModel(t *testing.T) {
	cfg := hfTestConfig()
	src, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nano := filepath.Join(dir, "nanogpt.safetensors")
	if err := SaveFile(nano, src.Params(), nil); err != nil {
		t.Fatal(err)
	}
	hf := filepath.Join(dir, "hf.safetensors")
	if out, err := oexec.Command("python3", "testdata/gen_hf_gpt2.py", nano, hf, "16").CombinedOutput(); err != nil {
		t.Skipf("python3 gen_hf_gpt2.py: %v\n%s", err, out)
	}
	f, err := safetensors.ReadFile(hf)
	if err != nil {
		t.Fatal(err)
	}
	if !IsHFGPT2(f) {
		t.Fatal("IsHFGPT2 is false for the generator's file")
	}
	if w, _ := f.Get("h.0.mlp.c_fc.weight"); !slices.Equal(w.Shape, []int{32, 128}) {
		t.Fatalf("generator: c_fc shape %v, want Conv1D [32 128]", w.Shape)
	}

	batch := &Batch{B: 2, T: 16, Tokens: make([]int32, 32), Targets: make([]int32, 32)}
	for i := range batch.Tokens {
		batch.Tokens[i], batch.Targets[i] = int32(i*7%50), int32(i*11%50)
	}
	want, err := src.Forward(context.Background(), batch, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{hf, nano} {
		dst, _ := New(cfg, 2)
		before, _ := dst.Forward(context.Background(), batch, false)
		if err := LoadWeights(path, dst.Params()); err != nil {
			t.Fatal(err)
		}
		got, _ := dst.Forward(context.Background(), batch, false)
		if got != want || before == want {
			t.Fatalf("%s: loss %v after loading (%v before), want %v", filepath.Base(path), got, before, want)
		}
	}

	// (a TP rank taking its piece: pkg/parallel/tp TestRankLoadsItsPieceOfHFWeights)

	// ToHFGPT2 writes what the generator wrote (but the mask buffers)
	ours := ToHFGPT2(src.Params().Tensors())
	for _, o := range ours {
		g, ok := f.Get(o.Name)
		if !ok || !slices.Equal(g.Shape, o.Shape) || !slices.Equal(g.Data, o.Data) {
			t.Fatalf("ToHFGPT2: tensor %q differs from the generator's", o.Name)
		}
	}
}

func TestLoadWeightsRefusesTheWrongShape(t *testing.T) {
	cfg := hfTestConfig()
	src, _ := New(cfg, 1)
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := SaveFile(path, src.Params(), nil); err != nil {
		t.Fatal(err)
	}
	cfg.VocabSize = 60
	dst, _ := New(cfg, 2)
	before := slices.Clone(dst.Params().Data)
	err := LoadWeights(path, dst.Params())
	if err == nil || !strings.Contains(err.Error(), `"transformer.wte.weight": shape [50 32], want [60 32]`) {
		t.Fatalf("err = %v", err)
	}
	if !slices.Equal(before, dst.Params().Data) {
		t.Fatal("a refused load changed the parameters")
	}
}
