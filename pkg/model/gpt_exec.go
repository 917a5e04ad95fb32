package model

import "runtime"

// startPool starts the goroutines the GPT's layers use for their parallel
// loops (attention over (batch row, head) pairs, activations over chunks),
// Compute.Threads of them (0: GOMAXPROCS; 1: everything on the caller).
// Matrix products are parallelised by Compute.GEMM, not by this pool. It
// runs at the first Forward; the helpers stop on Close or when the GPT is
// garbage collected.
func (g *GPT) startPool() {
	g.ex.started = true
	g.ex.pool = newWorkers(g.ex.threads)
	if g.ex.pool != nil {
		g.cleanup = runtime.AddCleanup(g, (*workers).close, g.ex.pool)
	}
}

// Close stops the layers' helper goroutines; the GPT keeps working, on the
// calling goroutine alone.
func (g *GPT) Close() {
	g.ex.started = true
	if g.ex.pool != nil {
		g.cleanup.Stop()
		g.ex.pool.close()
		g.ex.pool = nil
	}
}

// exe returns how g's layers run, starting the workers on first use.
func (g *GPT) exe() *exec {
	if !g.ex.started {
		g.startPool()
	}
	return &g.ex
}

// useReference makes the layers run their plain reference loops on the
// calling goroutine instead of the fast kernels; tests compare the two.
func (g *GPT) useReference(ref bool) { g.ex.ref, g.ce.ref = ref, ref }
