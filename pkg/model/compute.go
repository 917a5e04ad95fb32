package model

import "gonum.org/v1/gonum/blas"

// Compute is how a model runs its arithmetic. It is per model, never
// process-wide: two models in one process (a worker's replica and an eval,
// or the lanes of one trainer) may use different implementations and
// thread budgets.
type Compute struct {
	// GEMM computes every matrix product: Linear layers, the LM head and
	// attention's QKᵀ and PV. Use a kernels.Impl (kernels.New) for speed;
	// its GemmBF16 then also carries train.precision bf16. nil is gonum's
	// pure-Go reference implementation: exact, slow, allocation-heavy on
	// large products.
	GEMM blas.Float32
	// Threads is the number of goroutines a GPT's other parallel loops
	// (attention heads, activations, LayerNorm) use: 0 = GOMAXPROCS, 1 = the
	// calling goroutine only. The GEMM's own threads are the GEMM's
	// (kernels.Options.Threads).
	Threads int
}

// WithCompute builds the model with c instead of the defaults (gonum's
// reference GEMM, GOMAXPROCS layer threads).
func WithCompute(c Compute) Option {
	return func(o *options) { o.compute = c }
}
