package model

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// Every matrix product goes through the implementation the model was built
// with (Compute.GEMM, kept in Params and AttnArgs); nil means gonum's pure-Go
// reference. Nothing here reads a process-wide choice such as blas32.Use.
// Matrices are row-major; ld* are row strides.

// orReference is impl, or gonum's reference implementation when impl is nil.
func orReference(impl blas.Float32) blas.Float32 {
	if impl == nil {
		return gonum.Implementation{}
	}
	return impl
}

// sgemm computes c = alpha·op(a)·op(b) + beta·c with c (m,n), op(a) (m,k), op(b) (k,n).
func sgemm(impl blas.Float32, ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	tA, tB := transposes(ta, tb)
	orReference(impl).Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func transposes(ta, tb bool) (blas.Transpose, blas.Transpose) {
	tA, tB := blas.NoTrans, blas.NoTrans
	if ta {
		tA = blas.Trans
	}
	if tb {
		tB = blas.Trans
	}
	return tA, tB
}

// bf16Gemmer is a GEMM implementation with a bf16 product
// (kernels.Impl.GemmBF16: inputs rounded to bf16, fp32 accumulation).
type bf16Gemmer interface {
	GemmBF16(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

// gemmP is sgemm on p's implementation in p's precision: with p.BF16 the
// inputs are rounded to bf16 (by the implementation's GemmBF16, or here
// into scratch copies when it has none) and accumulated in fp32.
func gemmP(p *Params, ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !p.BF16 {
		sgemm(p.gemm, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if m == 0 || n == 0 {
		return
	}
	if g, ok := p.gemm.(bf16Gemmer); ok {
		tA, tB := transposes(ta, tb)
		g.GemmBF16(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemm(p.gemm, ta, tb, m, n, k, alpha, roundedBF16(a), lda, roundedBF16(b), ldb, beta, c, ldc)
}

// roundedBF16 returns a copy of x with every element rounded to bf16.
func roundedBF16(x []float32) []float32 {
	out := make([]float32, len(x))
	kernels.RoundBF16Slice(out, x)
	return out
}
