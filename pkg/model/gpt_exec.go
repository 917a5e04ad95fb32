package model

import "runtime"

// SetThreads sets the number of goroutines the GPT's layers use for their
// parallel loops (attention over (batch row, head) pairs, activations over
// chunks); n ≤ 0 means GOMAXPROCS, 1 runs everything on the caller. Matrix
// products are parallelised by the installed BLAS, not by this setting.
// Without a call the first Forward starts GOMAXPROCS. The helper goroutines
// stop on Close or when the GPT is garbage collected.
func (g *GPT) SetThreads(n int) {
	g.Close()
	g.ex.started = true
	g.ex.pool = newWorkers(n)
	if g.ex.pool != nil {
		g.cleanup = runtime.AddCleanup(g, (*workers).close, g.ex.pool)
	}
}

// Close stops the layers' helper goroutines; the GPT keeps working, on the
// calling goroutine alone.
func (g *GPT) Close() {
	if g.ex.pool != nil {
		g.cleanup.Stop()
		g.ex.pool.close()
		g.ex.pool = nil
	}
}

// exe returns how g's layers run, starting the default workers on first use.
func (g *GPT) exe() *exec {
	if !g.ex.started {
		g.SetThreads(0)
	}
	return &g.ex
}

// useReference makes the layers run their plain reference loops on the
// calling goroutine instead of the fast kernels; tests compare the two.
func (g *GPT) useReference(ref bool) { g.ex.ref, g.ce.ref = ref, ref }
