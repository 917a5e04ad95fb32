package train

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
)

// Lanes split each micro-batch across in-process replicas: the same
// computation as one lane up to the order of gradient additions, so losses,
// evaluations and final parameters agree closely for every architecture,
// also when the rows do not divide evenly and with gradient accumulation.
func TestLanesEqualOneLane(t *testing.T) {
	steps := 30
	if testing.Short() {
		steps = 8
	}
	text := testText(t)
	specs := map[string]jobspec.Spec{
		"gpt":         tiny(t, "sort", "model.n_head=4", "model.n_embd=16", "train.batch_size=16"),
		"gpt-accum":   tiny(t, "sort", "model.n_head=4", "model.n_embd=16", "train.batch_size=5", "train.grad_accum_steps=3"),
		"bert":        tiny(t, "bert-mlm", "model.n_head=4", "model.n_embd=16", "model.block_size=16", "data.path="+text),
		"encdec":      tiny(t, "seq2seq-reverse", "model.n_head=4", "model.n_embd=16", "model.block_size=17"),
		"gpt-one-row": tiny(t, "sort", "model.n_embd=16", "train.batch_size=1"),
	}
	for name, spec := range specs {
		ref := newTrainer(t, spec)
		want := losses(t, ref, steps)
		wantEval, err := ref.Evaluate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/lanes%d", name, n), func(t *testing.T) {
				tr := newTrainer(t, spec, WithLanes(n))
				if tr.Lanes() != n {
					t.Fatalf("Lanes() = %d, want %d", tr.Lanes(), n)
				}
				got := losses(t, tr, steps)
				for i := range want {
					if d := math.Abs(got[i] - want[i]); d > 1e-5 {
						t.Fatalf("step %d: loss %.7f with %d lanes, %.7f with one (|Δ| %.2g > 1e-5)", i, got[i], n, want[i], d)
					}
				}
				ev, err := tr.Evaluate(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(ev.ValLoss-wantEval.ValLoss) > 1e-5 || math.Abs(ev.TrainAccuracy-wantEval.TrainAccuracy) > 1e-3 {
					t.Errorf("evaluation with %d lanes %+v, with one %+v", n, ev, wantEval)
				}
				wantP, gotP := ref.Model.Params(), tr.Model.Params()
				for _, v := range wantP.Views {
					if isKeyBias(v.Name) {
						continue // pure rounding noise, see TestParallelRunsEqualSingleProcess
					}
					for i := v.Offset; i < v.End(); i++ {
						if d := math.Abs(float64(gotP.Data[i]-wantP.Data[i])) / math.Max(1, math.Abs(float64(wantP.Data[i]))); d > 1e-4 {
							t.Fatalf("final %s[%d]: %g with %d lanes, %g with one", v.Name, i-v.Offset, gotP.Data[i], n, wantP.Data[i])
						}
					}
				}
				for i, l := range tr.lanes {
					for _, g := range l.model.Params().Grad {
						if g != 0 {
							t.Fatalf("lane %d keeps a gradient after the step", i+1)
						}
					}
				}
			})
		}
	}
}

func TestLanesNeedASingleReplica(t *testing.T) {
	spec := tiny(t, "sort", "train.batch_size=8")
	layouts := inprocMesh(t, parallel.Mesh{DP: 2, TP: 1})
	_, err := NewReplica(spec, layouts[0], WithLanes(2))
	if err == nil || !strings.Contains(err.Error(), "single replica") {
		t.Fatalf("WithLanes(2) on a DP rank: %v, want an error about a single replica", err)
	}
	tr, err := NewReplica(spec, layouts[0], WithLanes(1))
	if err != nil || tr.Lanes() != 1 {
		t.Fatalf("WithLanes(1): %v", err)
	}
}
