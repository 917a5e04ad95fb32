package train

import (
	"context"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// gatherFull assembles the full parameters of the replica's tensor-parallel
// group, laid out as a TP=1 model of the same spec (tp.Group.Gather). Every
// TP rank must call it.
func (tr *Trainer) gatherFull(ctx context.Context) (*model.Params, error) {
	if tr.layout.Mesh.TP == 1 {
		return tr.Model.Params(), nil
	}
	fullModel, err := model.New(tr.Spec.Model, tr.Spec.Train.Seed)
	if err != nil {
		return nil, err
	}
	full := fullModel.Params()
	if err := tr.tp.Gather(ctx, full, tr.Model.Params()); err != nil {
		return nil, err
	}
	return full, nil
}
