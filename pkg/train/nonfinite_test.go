package train

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
)

// A NaN injected into one DP rank's gradient (it reaches every rank through
// the all-reduce) is caught before the optimizer on every rank: with
// on_nonfinite: skip both ranks drop that step, count it, and stay
// bit-identical to each other, their parameters unchanged by it; with the
// default (stop) both ranks return ErrNonFiniteLoss at that step.
func TestNonFiniteGradientSkippedOnEveryRank(t *testing.T) {
	for _, mode := range []string{jobspec.NonFiniteSkip, jobspec.NonFiniteStop} {
		t.Run(mode, func(t *testing.T) {
			spec, err := jobspec.Override(jobspec.Default(), []string{
				"model.n_layer=1", "model.n_embd=32", "train.max_iters=6", "train.on_nonfinite=" + mode})
			if err != nil {
				t.Fatal(err)
			}
			layouts := inprocMesh(t, parallel.Mesh{DP: 2, TP: 1})
			var trs []*Trainer
			for _, l := range layouts {
				tr, err := NewReplica(spec, l)
				if err != nil {
					t.Fatal(err)
				}
				trs = append(trs, tr)
			}
			const poisoned = 3
			var before []float32
			for step := range 6 {
				if step == poisoned {
					// Backward accumulates into Grad: a NaN there is in rank 1's
					// gradient when its bucket is all-reduced.
					trs[1].Model.Params().Grad[0] = float32(math.NaN())
					before = slices.Clone(trs[0].Model.Params().Data)
				}
				sts := make([]StepStats, 2)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for r, tr := range trs {
					wg.Go(func() { sts[r], errs[r] = tr.Step(context.Background()) })
				}
				wg.Wait()
				for r := range trs {
					switch {
					case step != poisoned:
						if errs[r] != nil || sts[r].Skipped {
							t.Fatalf("step %d rank %d: skipped %v, err %v", step, r, sts[r].Skipped, errs[r])
						}
					case mode == jobspec.NonFiniteSkip:
						if errs[r] != nil || !sts[r].Skipped {
							t.Fatalf("poisoned step, rank %d: skipped %v, err %v; want skipped", r, sts[r].Skipped, errs[r])
						}
						if !slices.Equal(trs[r].Model.Params().Data, before) {
							t.Errorf("rank %d: the skipped step changed the parameters", r)
						}
					default:
						if !errors.Is(errs[r], ErrNonFiniteLoss) {
							t.Fatalf("poisoned step, rank %d: err %v, want ErrNonFiniteLoss", r, errs[r])
						}
					}
				}
				if step == poisoned && mode == jobspec.NonFiniteStop {
					return
				}
			}
			for r, tr := range trs {
				if tr.Skipped() != 1 || tr.Iter() != 6 {
					t.Errorf("rank %d: %d skipped, at iter %d; want 1 and 6", r, tr.Skipped(), tr.Iter())
				}
				for i, v := range tr.Model.Params().Data {
					if math.IsNaN(float64(v)) {
						t.Fatalf("rank %d: parameter %d is NaN", r, i)
					}
				}
			}
			a, b := trs[0].Model.Params().Data, trs[1].Model.Params().Data
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("ranks diverged at parameter %d: %v vs %v", i, a[i], b[i])
				}
			}
		})
	}
}
