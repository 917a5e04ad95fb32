package train

import (
	"fmt"
	"runtime"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// Option configures New and NewReplica.
type Option func(*options)

type options struct {
	compute    model.Compute
	hasCompute bool
	lanes      int
}

// WithCompute runs the trainer's models on c: its GEMM for every matrix
// product, c.Threads goroutines for a GPT's other parallel loops (lanes run
// theirs on one). The caller owns c.GEMM and closes it after the trainer.
// Without it the trainer makes its own kernels.Impl (the fastest path this
// CPU has, GOMAXPROCS threads divided among the lanes), which stops when the
// trainer is closed or collected.
func WithCompute(c model.Compute) Option {
	return func(o *options) { o.compute, o.hasCompute = c, true }
}

// WithLanes splits every micro-batch across n in-process replicas running at
// once (n ≤ 1: one, the default). Lanes need a single replica (no data or
// tensor parallelism across processes) and, to be useful, a single-threaded
// GEMM (kernels.Options{Threads: 1}), since the lanes are the parallelism;
// every lane's layers run on its own goroutine. Lanes beyond a micro-batch's
// rows idle.
func WithLanes(n int) Option {
	return func(o *options) { o.lanes = n }
}

// applyOptions is opts over the defaults; a GEMM the trainer has to own is
// returned as owned (nil when the caller gave one).
func applyOptions(opts []Option) (options, *kernels.Impl, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.lanes = max(1, o.lanes)
	if o.hasCompute {
		return o, nil, nil
	}
	impl, err := kernels.New(kernels.Options{Threads: max(1, runtime.GOMAXPROCS(0)/o.lanes)})
	if err != nil {
		return o, nil, fmt.Errorf("matrix products: %w", err)
	}
	o.compute = model.Compute{GEMM: impl}
	return o, impl, nil
}

// modelCompute is the Compute of the trainer's own model and lanes: with
// lanes every lane runs its layers on its own goroutine.
func (o options) modelCompute() model.Compute {
	c := o.compute
	if o.lanes > 1 {
		c.Threads = 1
	}
	return c
}

// Close stops the goroutines the trainer owns: its lanes' crew, its models'
// layer pools and the GEMM it made for itself (not one given by
// WithCompute). The trainer must not be used after Close. Without a call
// they stop when the trainer is garbage collected.
func (tr *Trainer) Close() {
	if tr.crew != nil {
		tr.crew.close()
	}
	tr.Model.Close()
	for _, l := range tr.lanes {
		l.model.Close()
	}
	if tr.ownGEMM != nil {
		_ = tr.ownGEMM.Close()
	}
}
