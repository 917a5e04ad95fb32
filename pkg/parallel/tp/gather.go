package tp

import (
	"context"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Gather assembles the whole parameters of g's group into full (the Params
// of the same model built without tensor parallelism) from this rank's
// local ones. Every rank of the group must call it: each writes its pieces
// (and rank 0 the replicated tensors) into a zeroed full buffer, and one
// sum all-reduce over the group completes it on every rank.
func (g *Group) Gather(ctx context.Context, full, local *model.Params) error {
	clear(full.Data)
	for _, v := range local.Views {
		fv, ok := full.Lookup(v.Name)
		if !ok {
			return fmt.Errorf("gather: piece %s has no counterpart in the whole model", v.Name)
		}
		dst := full.Data[fv.Offset:fv.End()]
		switch {
		case v.Shard != nil:
			v.CopyToFull(dst, local.Value(v))
		case g.rank == 0:
			copy(dst, local.Value(v))
		}
	}
	if g.size == 1 {
		return nil
	}
	if err := g.comm.AllReduce(ctx, full.Data, allreduce.Sum); err != nil {
		return fmt.Errorf("gather (rank %d of %d): %w", g.rank, g.size, err)
	}
	return nil
}
