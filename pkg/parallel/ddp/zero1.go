package ddp

import (
	"context"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
)

// Gatherer all-gathers a buffer over the data-parallel group in the layout
// of allreduce.Part; *allreduce.Communicator provides it.
type Gatherer interface {
	AllGather(ctx context.Context, buf []float32) error
}

// ZeRO1 is ZeRO stage 1 (Rajbhandari et al. 2020) over a DP group: each rank
// keeps the optimizer moments of, and updates, only its slice [Lo, Hi) of the
// flat parameter buffer; after the step every rank takes every slice.
type ZeRO1 struct {
	dp     Gatherer
	Lo, Hi int
}

// NewZeRO1 gives DP rank dpRank of dpSize its slice of an n-value buffer:
// part dpRank of the all-gather layout (allreduce.Part, parallel.Split).
func NewZeRO1(dp Gatherer, n, dpSize, dpRank int) *ZeRO1 {
	lo, hi := allreduce.Part(n, dpSize, dpRank)
	return &ZeRO1{dp: dp, Lo: lo, Hi: hi}
}

// GatherParams gives every rank the slices the others updated.
func (z *ZeRO1) GatherParams(ctx context.Context, data []float32) error {
	if err := z.dp.AllGather(ctx, data); err != nil {
		return fmt.Errorf("parameter all-gather: %w", err)
	}
	return nil
}

// GatherMoments returns the whole n-value moments m and v of which this rank
// holds slices mPart and vPart ([Lo, Hi)); every DP rank must call it at the
// same step.
func (z *ZeRO1) GatherMoments(ctx context.Context, n int, mPart, vPart []float32) (m, v []float32, err error) {
	m, v = make([]float32, n), make([]float32, n)
	copy(m[z.Lo:z.Hi], mPart)
	copy(v[z.Lo:z.Hi], vPart)
	for _, buf := range [][]float32{m, v} {
		if err := z.dp.AllGather(ctx, buf); err != nil {
			return nil, nil, fmt.Errorf("gather optimizer state: %w", err)
		}
	}
	return m, v, nil
}
