package model

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"testing"
)

// torchPython returns Debian's python3 when it can import torch.
func torchPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if err := osexec.Command(py, "-c", "import torch, numpy").Run(); err != nil {
		t.Skipf("PyTorch is not available (%v); apt-get install python3-torch python3-numpy", err)
	}
	return py
}

// A GPT exported here loads into nanoGPT's PyTorch model with a strict
// load_state_dict and computes the same loss (the other direction, PyTorch
// weights loaded here, is TestGPTMatchesPyTorch).
func TestExportedGPTLoadsInPyTorch(t *testing.T) {
	py := torchPython(t)
	cfg := Config{Arch: ArchGPT, NLayer: 2, NHead: 2, NEmbd: 16, BlockSize: 8, VocabSize: 11, Bias: true}
	m, err := New(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range m.Params().Data { // move LayerNorms and biases off 1/0 too
		m.Params().Data[i] += float32(rng.NormFloat64() * 0.05)
	}
	B, T := 3, 8
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.Tokens {
		b.Tokens[i], b.Targets[i] = int32(rng.IntN(11)), int32(rng.IntN(11))
	}
	b.Targets[5] = IgnoreIndex
	loss, err := m.Forward(context.Background(), b, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	weights := filepath.Join(dir, "gpt.safetensors")
	if err := SaveFile(weights, m.Params(), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(map[string]any{
		"config": map[string]any{"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 8, "vocab_size": 11, "bias": true},
		"B":      B, "T": T, "tokens": b.Tokens, "targets": b.Targets,
	})
	batchFile := filepath.Join(dir, "batch.json")
	if err := os.WriteFile(batchFile, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(py, "check_export.py", weights, batchFile)
	cmd.Dir = "testdata"
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*osexec.ExitError); ok {
			t.Fatalf("check_export.py: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var res struct{ Loss float64 }
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("check_export.py printed %q: %v", out, err)
	}
	if d := math.Abs(res.Loss - float64(loss)); d > 1e-5*math.Abs(res.Loss) {
		t.Errorf("PyTorch computes loss %.7f on the exported weights, ringmaster %.7f", res.Loss, loss)
	}
}
