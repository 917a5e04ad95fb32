package train

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// Lanes: data parallelism inside one process. Each lane is a model replica
// that shares the parameters (Data) of the trainer's model but has its own
// gradients and activations; a micro-batch's rows are split across the
// lanes, which run forward and backward at the same time on their own
// goroutines (one core each, with single-threaded matrix products), and the
// lane gradients are then summed into the trainer's. On a small model this
// beats splitting every matrix product across cores: the cores never wait
// for each other inside a step (baby GPT on 2 cores: ≈ 32,000 tokens/s with
// two lanes, ≈ 22,400 with every product split in two; bench/babygpt). The
// step is the same computation up to the order of floating
// point additions in the parameter gradients.

// lane is one replica: lane 0 is the trainer's own model, the others are
// extra replicas sharing its parameters.
type lane struct {
	model model.Model
	batch model.Batch
	loss  float32
	err   error
}

// setLanes makes the n−1 lanes beyond the trainer's own model (WithLanes;
// n ≤ 1: none). Every lane's model runs on the trainer's GEMM, which must
// be safe for concurrent calls (kernels.Impl is), with its layers on the
// lane's goroutine.
func (tr *Trainer) setLanes(n int) error {
	if n <= 1 {
		return nil
	}
	if tr.layout.Mesh.DP > 1 || tr.layout.Mesh.TP > 1 {
		return fmt.Errorf("lanes: %d requested, but lanes need a single replica (this one is %d×%d data × tensor parallel)",
			n, tr.layout.Mesh.DP, tr.layout.Mesh.TP)
	}
	p0 := tr.Model.Params()
	lanes := make([]*lane, n-1)
	for i := range lanes {
		opts := append([]model.Option{model.WithCompute(model.Compute{GEMM: tr.compute.GEMM, Threads: 1})}, tr.modelOpts...)
		m, err := model.New(tr.Spec.Model, tr.Spec.Train.Seed+int64(i+1), opts...)
		if err != nil {
			return fmt.Errorf("lane %d: %w", i+1, err)
		}
		p := m.Params()
		if len(p.Data) != len(p0.Data) {
			return fmt.Errorf("lane %d: %d parameters, the model has %d", i+1, len(p.Data), len(p0.Data))
		}
		p.Data = p0.Data // shared, read-only during a step; the optimizer writes it between steps
		p.BF16 = p0.BF16
		lanes[i] = &lane{model: m}
	}
	tr.lanes = lanes
	tr.lane0 = lane{model: tr.Model}
	tr.laneSqParts = make([]float64, n)
	tr.crew = newCrew(n - 1)
	// The helpers hold no reference to the trainer between tasks, so it can
	// be collected; then they stop.
	runtime.AddCleanup(tr, (*crew).close, tr.crew)
	return nil
}

// Lanes is the number of lanes a micro-batch is split across (1: none).
func (tr *Trainer) Lanes() int { return len(tr.lanes) + 1 }

// microStepLanes runs forward and backward for rows [lo,hi) of iteration
// it's global batch, split across the lanes, and leaves the summed
// gradients in the trainer's model. It returns the loss over those rows
// and the tokens they hold.
func (tr *Trainer) microStepLanes(ctx context.Context, it int64, global, lo, hi int, denom float32) (float64, int, error) {
	n := min(len(tr.lanes)+1, hi-lo)
	tr.crew.run(n, func(i int) {
		l := tr.lane(i)
		a, b := lo+i*(hi-lo)/n, lo+(i+1)*(hi-lo)/n
		l.loss, l.err = 0, nil
		if err := tr.Data.Fill(&l.batch, data.Train, it, global, a, b); err != nil {
			l.err = fmt.Errorf("batch: %w", err)
			return
		}
		l.batch.LossDenom = denom
		if l.loss, l.err = l.model.Forward(ctx, &l.batch, true); l.err != nil {
			l.err = fmt.Errorf("forward: %w", l.err)
			return
		}
		if l.err = l.model.Backward(ctx); l.err != nil {
			l.err = fmt.Errorf("backward: %w", l.err)
		}
	})
	var loss float64
	tokens := 0
	var errs []error
	for i := range n {
		l := tr.lane(i)
		if l.err != nil {
			errs = append(errs, fmt.Errorf("lane %d: %w", i, l.err))
			continue
		}
		loss += float64(l.loss)
		tokens += tr.tokensIn(&l.batch)
	}
	tr.sumLaneGrads(n)
	return loss, tokens, errors.Join(errs...)
}

// lane returns lane i: 0 is the trainer's own model and batch.
func (tr *Trainer) lane(i int) *lane {
	if i == 0 {
		return &tr.lane0
	}
	return tr.lanes[i-1]
}

// sumLaneGrads adds the first n−1 lanes' gradients into the model's and
// zeroes them, each of n goroutines taking one slice of the buffer, and
// records the squared norm of the summed gradient (for clipping, so that
// no other pass over the buffer is needed).
func (tr *Trainer) sumLaneGrads(n int) {
	g0 := tr.Model.Params().Grad
	sq := tr.laneSqParts[:n]
	tr.inParallel(len(g0), n, func(i, a, b int) {
		for _, l := range tr.lanes[:n-1] {
			g := l.model.Params().Grad[a:b]
			vecmath.Add(g0[a:b], g0[a:b], g)
			clear(g)
		}
		sq[i] = vecmath.SumSq64(g0[a:b])
	})
	tr.laneSq = 0
	for _, v := range sq {
		tr.laneSq += v // in chunk order: the same bits every run
	}
}

// inParallel runs f(i, a, b) for the n slices [a,b) of [0,size), slice i on
// lane i's goroutine (the first on the caller's).
func (tr *Trainer) inParallel(size, n int, f func(i, a, b int)) {
	tr.crew.run(n, func(i int) { f(i, i*size/n, (i+1)*size/n) })
}

// zeroLaneGrads clears every lane's gradients (after a failed step).
func (tr *Trainer) zeroLaneGrads() {
	for _, l := range tr.lanes {
		l.model.Params().ZeroGrad()
	}
}
