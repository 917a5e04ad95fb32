package train

import (
	"context"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// gatherFull assembles the full parameters of the replica's tensor-parallel
// group, laid out as a TP=1 model of the same spec. Every TP rank must call
// it: each writes its shards (and rank 0 the replicated tensors) into a
// zeroed full buffer, and one sum all-reduce over the group completes it.
func (tr *Trainer) gatherFull(ctx context.Context) (*model.Params, error) {
	if tr.layout.Mesh.TP == 1 {
		return tr.Model.Params(), nil
	}
	fullModel, err := model.New(tr.Spec.Model, tr.Spec.Train.Seed)
	if err != nil {
		return nil, err
	}
	full := fullModel.Params()
	clear(full.Data)
	local := tr.Model.Params()
	for _, v := range local.Views {
		fv, ok := full.Lookup(v.Name)
		if !ok {
			return nil, fmt.Errorf("gather: shard %s has no counterpart in the full model", v.Name)
		}
		dst := full.Data[fv.Offset:fv.End()]
		switch {
		case v.Shard != nil:
			v.CopyToFull(dst, local.Value(v))
		case tr.layout.TPRank == 0:
			copy(dst, local.Value(v))
		}
	}
	if err := tr.layout.TP.AllReduce(ctx, full.Data, allreduce.Sum); err != nil {
		return nil, fmt.Errorf("gather: %w", err)
	}
	return full, nil
}
