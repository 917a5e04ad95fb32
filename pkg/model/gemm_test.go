package model

import (
	"context"
	"sync/atomic"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// countingBLAS counts Sgemm calls (attention calls it from the layer pool's
// goroutines, hence atomic) and delegates to gonum.
type countingBLAS struct {
	gonum.Implementation
	calls atomic.Int64
}

func (c *countingBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, cc []float32, ldc int) {
	c.calls.Add(1)
	c.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, cc, ldc)
}

// The GEMM a model is built with (WithCompute) carries every matrix
// product, and one installed process-wide with blas32.Use carries none.
func TestUsesItsComputeGEMM(t *testing.T) {
	prev := blas32.Implementation()
	global := &countingBLAS{}
	blas32.Use(global)
	t.Cleanup(func() { blas32.Use(prev) })
	counter := &countingBLAS{}
	g := mustGPT(t, tinyGPTConfig(), 1, WithCompute(Compute{GEMM: counter}))
	if _, err := g.Forward(context.Background(), tinyBatch(), false); err != nil {
		t.Fatal(err)
	}
	g.Backward(context.Background())
	// Per layer: 4 Linear forwards, 2 GEMMs per (b,head) forward; backward twice
	// the Linears and 4 per (b,head); plus lm_head.
	L, B, NH := 2, 2, 2
	want := L*(4+2*B*NH) + 1 + L*(8+4*B*NH) + 2
	if got := counter.calls.Load(); got != int64(want) {
		t.Fatalf("%d Sgemm calls through the model's GEMM, want %d", got, want)
	}
	if n := global.calls.Load(); n != 0 {
		t.Fatalf("%d Sgemm calls through blas32's process-wide implementation, want 0", n)
	}
	// BERT and the encoder–decoder take it the same way.
	for _, tc := range []struct {
		cfg   Config
		batch *Batch
	}{{tinyBERTConfig(), tinyBERTBatch()}, {tinyEncDecConfig(), tinyEncDecBatch()}} {
		cfg := tc.cfg
		c := &countingBLAS{}
		m, err := New(cfg, 1, WithCompute(Compute{GEMM: c}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Forward(context.Background(), tc.batch, false); err != nil {
			t.Fatal(err)
		}
		if c.calls.Load() == 0 || global.calls.Load() != 0 {
			t.Fatalf("%s: %d products through its GEMM, %d through blas32's", cfg.Arch, c.calls.Load(), global.calls.Load())
		}
	}
}
