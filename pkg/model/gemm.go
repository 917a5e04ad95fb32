package model

import (
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
