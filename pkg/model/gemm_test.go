package model

import (
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

// A BLAS installed with blas32.Use carries every matrix product.
func TestUsesInstalledBLAS(t *testing.T) {
	prev := blas32.Implementation()
	counter := &countingBLAS{}
	blas32.Use(counter)
	t.Cleanup(func() { blas32.Use(prev) })
	g := mustGPT(t, tinyGPTConfig(), 1)
	if _, err := g.Forward(tinyBatch(), false); err != nil {
		t.Fatal(err)
	}
	g.Backward()
	// Per layer: 4 Linear forwards, 2 GEMMs per (b,head) forward; backward twice
	// the Linears and 4 per (b,head); plus lm_head.
	L, B, NH := 2, 2, 2
	want := L*(4+2*B*NH) + 1 + L*(8+4*B*NH) + 2
	if got := counter.calls.Load(); got != int64(want) {
		t.Fatalf("%d Sgemm calls through the installed BLAS, want %d", got, want)
	}
}
