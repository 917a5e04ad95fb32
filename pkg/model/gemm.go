package model

import (
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// All matrix products go through blas32.Implementation(), so a faster
// implementation installed with blas32.Use is picked up everywhere.
// Matrices are row-major; ld* are row strides.

// sgemm computes c = alpha·op(a)·op(b) + beta·c with c (m,n), op(a) (m,k), op(b) (k,n).
func sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	blas32.Implementation().Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// bf16Gemmer is a GEMM implementation with a bf16 product
// (kernels.Impl.GemmBF16: inputs rounded to bf16, fp32 accumulation).
type bf16Gemmer interface {
	GemmBF16(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

// gemmP is sgemm in p's precision: with p.BF16 the inputs are rounded to
// bf16 (by the installed implementation's GemmBF16, or here into scratch
// copies when it has none) and accumulated in fp32.
func gemmP(p *Params, ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !p.BF16 {
		sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m == 0 || n == 0 {
		return
	}
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	if g, ok := blas32.Implementation().(bf16Gemmer); ok {
		g.GemmBF16(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemm(ta, tb, m, n, k, alpha, roundedBF16(a), lda, roundedBF16(b), ldb, beta, c, ldc)
}

// roundedBF16 returns a copy of x with every element rounded to bf16.
func roundedBF16(x []float32) []float32 {
	out := make([]float32, len(x))
	kernels.RoundBF16Slice(out, x)
	return out
}
