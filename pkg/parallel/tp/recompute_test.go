package tp_test

import (
	"slices"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// A tensor-parallel rank recomputing whole blocks (their all-reduces, and
// attention dropout from the rank's own generator, replayed) ends with the
// bits of one that keeps every activation.
func TestRecomputeBlockUnderTensorParallelism(t *testing.T) {
	wantL, wantP := dropoutTP(t, 2, 4)
	for _, r := range []model.Recompute{model.RecomputeMLP, model.RecomputeBlock} {
		gotL, gotP := dropoutTP(t, 2, 4, model.WithRecompute(r))
		for rank := range 2 {
			if !slices.Equal(gotL[rank], wantL[rank]) || !slices.Equal(gotP[rank].Data, wantP[rank].Data) {
				t.Errorf("recompute %s, rank %d: losses %v (keeping everything: %v) or final parameters differ", r, rank, gotL[rank], wantL[rank])
			}
		}
	}
}
