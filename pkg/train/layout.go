package train

import (
	"context"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
)

// Collective is what the trainer needs from a group of ranks;
// *allreduce.Communicator provides it.
type Collective interface {
	AllReduce(ctx context.Context, buf []float32, op allreduce.Op) error
	AllReduceAsync(ctx context.Context, buf []float32, op allreduce.Op) *allreduce.Handle
	Broadcast(ctx context.Context, buf []float32, root int) error
	AllGather(ctx context.Context, buf []float32) error
}

// Layout places one replica in a DP × TP mesh: which rows of each global
// batch it computes, which tensor-parallel shard of the model it holds, and
// the groups it reduces with. The zero Layout is a single process.
type Layout struct {
	Mesh   parallel.Mesh
	DPRank int        // data-parallel index: which rows of the global batch
	TPRank int        // tensor-parallel index: which heads and MLP columns
	DP     Collective // gradient all-reduce among ranks with the same TPRank (nil when Mesh.DP == 1)
	TP     Collective // activation all-reduces among ranks with the same DPRank (nil when Mesh.TP == 1)
}

func (l Layout) withDefaults() Layout {
	if l.Mesh.DP == 0 {
		l.Mesh.DP = 1
	}
	if l.Mesh.TP == 0 {
		l.Mesh.TP = 1
	}
	return l
}

func (l Layout) validate(batchSize int) error {
	m := l.Mesh
	if m.DP < 1 || m.TP < 1 {
		return fmt.Errorf("layout: dp and tp must be ≥ 1, got dp=%d tp=%d", m.DP, m.TP)
	}
	if l.DPRank < 0 || l.DPRank >= m.DP || l.TPRank < 0 || l.TPRank >= m.TP {
		return fmt.Errorf("layout: rank (dp=%d, tp=%d) outside the %d×%d mesh", l.DPRank, l.TPRank, m.DP, m.TP)
	}
	if m.DP > 1 && l.DP == nil {
		return fmt.Errorf("layout: dp=%d needs a data-parallel collective", m.DP)
	}
	if m.TP > 1 && l.TP == nil {
		return fmt.Errorf("layout: tp=%d needs a tensor-parallel collective", m.TP)
	}
	if batchSize < m.DP {
		return fmt.Errorf("train.batch_size: %d rows cannot be split over %d data-parallel ranks; use batch_size ≥ %d or fewer workers", batchSize, m.DP, m.DP)
	}
	return nil
}
