package train

import (
	"context"
	"fmt"
)

// State is a replica's whole training state in checkpoint form: its
// parameters and the AdamW moments over all of them, whatever the optimizer
// sharding, and the optimizer's step count.
type State struct {
	Params, M, V []float32
	Steps        int
}

// ExportState returns the replica's state. Without ZeRO-1 the slices are the
// live buffers (copy them before the next step); with ZeRO-1 the moment
// shards are all-gathered from the data-parallel group first, so every DP
// rank must call it at the same step.
func (tr *Trainer) ExportState(ctx context.Context) (State, error) {
	p, opt := tr.Model.Params().Data, tr.opt
	st := State{Params: p, M: opt.M, V: opt.V, Steps: opt.Steps}
	if tr.zero1 == nil {
		return st, nil
	}
	var err error
	if st.M, st.V, err = tr.zero1.GatherMoments(ctx, len(p), opt.M, opt.V); err != nil {
		return State{}, err
	}
	return st, nil
}

// ImportState loads a State (as ExportState returns it) into the replica:
// all parameters, and this rank's part of the moments.
func (tr *Trainer) ImportState(st State) error {
	p, opt := tr.Model.Params().Data, tr.opt
	n := len(p)
	if len(st.Params) != n || len(st.M) != n || len(st.V) != n {
		return fmt.Errorf("state holds %d parameters and %d/%d moments, this replica has %d", len(st.Params), len(st.M), len(st.V), n)
	}
	copy(p, st.Params)
	copy(opt.M, st.M[opt.Lo:opt.Hi])
	copy(opt.V, st.V[opt.Lo:opt.Hi])
	opt.Steps = st.Steps
	return nil
}

// OptimizerBytes is the memory this replica's optimizer state takes.
func (tr *Trainer) OptimizerBytes() int { return 4 * (len(tr.opt.M) + len(tr.opt.V)) }
