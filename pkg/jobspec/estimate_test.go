package jobspec

import (
	"context"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// The parameter count is the model's own, for every preset and some variants.
func TestEstimateParamsMatchModel(t *testing.T) {
	var specs []Spec
	for _, name := range PresetNames() {
		s, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, s)
	}
	gptBias, _ := Override(Default(), []string{"model.bias=true", "model.n_hidden=100"})
	bertCls, _ := Override(BERTMLM().WithDefaults(), []string{"model.n_classes=3", "model.n_layer=1"})
	specs = append(specs, gptBias, bertCls)
	for _, s := range specs {
		cfg := s.Model
		cfg.VocabSize = 65
		m, err := model.New(cfg, 1)
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		e, err := EstimateMemory(s, Layout{VocabSize: 65})
		if err != nil {
			t.Fatal(err)
		}
		if got := int64(len(m.Params().Data)); e.Params != got || e.RankParams != got {
			t.Errorf("%s (%s): estimate %d parameters, model has %d", s.Name, cfg.Arch, e.Params, got)
		}
	}
}

// The estimate of one lane's memory is what building and stepping the model
// allocates on the heap (weights, gradients, AdamW moments, activations,
// and the staging copy a worker keeps for background checkpoint saves).
func TestEstimateMemoryMatchesHeap(t *testing.T) {
	for _, set := range [][]string{
		{"model.n_layer=2", "train.batch_size=4"},
		{"model.n_layer=2", "model.n_embd=256", "model.block_size=128", "train.batch_size=2", "model.dropout=0.1"},
		{"model.n_layer=6", "model.n_embd=256", "model.block_size=128", "train.batch_size=2", "model.dropout=0.1", "train.recompute=mlp"},
		{"model.n_layer=6", "model.n_embd=256", "model.block_size=128", "train.batch_size=2", "model.dropout=0.1", "train.recompute=block"},
	} {
		s, err := Override(BabyGPT().WithDefaults(), set)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.Model
		cfg.VocabSize = 65
		B, T := s.Train.BatchSize, cfg.BlockSize
		recompute, err := model.ParseRecompute(s.Train.Recompute)
		if err != nil {
			t.Fatal(err)
		}
		before := heapAlloc()
		m, err := model.New(cfg, 1, model.WithRecompute(recompute))
		if err != nil {
			t.Fatal(err)
		}
		opt, err := model.NewAdamW(m.Params(), 0.9, 0.99, 1e-8, 0.1)
		if err != nil {
			t.Fatal(err)
		}
		b := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
		if _, err := m.Forward(context.Background(), b, true); err != nil {
			t.Fatal(err)
		}
		if err := m.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
		opt.Step(m.Params(), 1e-3)
		staging := make([]float32, len(m.Params().Data)+len(opt.M)+len(opt.V)) // the saver's buffers
		measured := heapAlloc() - before
		runtime.KeepAlive(m)
		runtime.KeepAlive(opt)
		runtime.KeepAlive(staging)
		e, err := EstimateMemory(s, Layout{VocabSize: 65})
		if err != nil {
			t.Fatal(err)
		}
		if rel := math.Abs(float64(e.TotalBytes-measured)) / float64(measured); rel > 0.05 {
			t.Errorf("%v: estimate %d bytes, heap grew %d (%.1f%% off, want ≤ 5%%): %s", set, e.TotalBytes, measured, 100*rel, e.Breakdown())
		}
		t.Logf("%v: estimate %d bytes, measured %d (%s)", set, e.TotalBytes, measured, e.Breakdown())
	}
}

func heapAlloc() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func TestEstimateLayoutAndFits(t *testing.T) {
	s, err := Override(BabyGPT().WithDefaults(), []string{"train.batch_size=12"})
	if err != nil {
		t.Fatal(err)
	}
	one, _ := EstimateMemory(s, Layout{VocabSize: 65})
	dp2, _ := EstimateMemory(s, Layout{DP: 2, Lanes: 2, VocabSize: 65})
	if dp2.RowsPerLane != 3 || dp2.Lanes != 2 || dp2.GradBytes != 2*one.GradBytes {
		t.Errorf("DP 2 × 2 lanes of 12 rows: %d rows/lane, %d lanes, grads %d (one lane %d)", dp2.RowsPerLane, dp2.Lanes, dp2.GradBytes, one.GradBytes)
	}
	if proc, _ := EstimateMemory(s, Layout{VocabSize: 65, OneProcess: true}); one.CkptBytes == 0 || proc.CkptBytes != 0 || proc.TotalBytes != one.TotalBytes-one.CkptBytes {
		t.Errorf("one process: checkpoint staging %d of total %d, a worker's %d of %d; want none in one process", proc.CkptBytes, proc.TotalBytes, one.CkptBytes, one.TotalBytes)
	}
	s.Parallel.ZeRO1 = true
	z, _ := EstimateMemory(s, Layout{DP: 4, VocabSize: 65})
	if z.OptimBytes*4 < one.OptimBytes || z.OptimBytes*4 > one.OptimBytes+4 {
		t.Errorf("ZeRO-1 over 4: optimizer %d bytes, want a quarter of %d", z.OptimBytes, one.OptimBytes)
	}
	if err := one.Fits(one.TotalBytes * 2); err != nil {
		t.Errorf("fits in twice its size: %v", err)
	}
	err = one.Fits(one.TotalBytes * 3 / 2)
	if err == nil || !strings.Contains(err.Error(), "train.batch_size") || !strings.Contains(err.Error(), "per worker") {
		t.Errorf("too small a machine: %v, want an error naming train.batch_size", err)
	}
	if _, err := EstimateMemory(s, Layout{}); err == nil || !strings.Contains(err.Error(), "model.vocab_size") {
		t.Errorf("no vocabulary size: %v", err)
	}
}
