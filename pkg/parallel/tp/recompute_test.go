package tp_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// dropoutTP trains rank 0..size-1 of a GPT with dropout for steps and
// returns each rank's losses and final parameters.
func dropoutTP(t *testing.T, size int, extra ...model.Option) ([][]float32, [][]float32) {
	t.Helper()
	c := tpCases()[0]
	c.cfg.Dropout = 0.2
	g := newMemGroup(size)
	losses := make([][]float32, size)
	final := make([][]float32, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range size {
		wg.Go(func() {
			defer func() {
				if errs[r] != nil {
					g.abort()
				}
			}()
			m, err := model.New(c.cfg, 42, append(extra, rankOf(t, r, size, g.allReduce(r)))...)
			if err != nil {
				errs[r] = err
				return
			}
			p := m.Params()
			opt, err := model.NewAdamW(p, 0.9, 0.95, 0, 0.1)
			if err != nil {
				errs[r] = err
				return
			}
			for s := range 4 {
				p.ZeroGrad()
				loss, err := m.Forward(context.Background(), c.batch(s), true)
				if err != nil {
					errs[r] = err
					return
				}
				if errs[r] = m.Backward(context.Background()); errs[r] != nil {
					return
				}
				losses[r] = append(losses[r], loss)
				opt.Step(p, tpLR)
			}
			final[r] = slices.Clone(p.Data)
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return losses, final
}

// A tensor-parallel rank recomputing whole blocks (their all-reduces, and
// attention dropout from the rank's own generator, replayed) ends with the
// bits of one that keeps every activation.
func TestRecomputeBlockUnderTensorParallelism(t *testing.T) {
	wantL, wantP := dropoutTP(t, 2)
	for _, r := range []model.Recompute{model.RecomputeMLP, model.RecomputeBlock} {
		gotL, gotP := dropoutTP(t, 2, model.WithRecompute(r))
		for rank := range 2 {
			if !slices.Equal(gotL[rank], wantL[rank]) || !slices.Equal(gotP[rank], wantP[rank]) {
				t.Errorf("recompute %s, rank %d: losses %v (keeping everything: %v) or final parameters differ", r, rank, gotL[rank], wantL[rank])
			}
		}
	}
}
