package kernels

import (
	"fmt"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// BenchmarkStepShapes is every matrix product of one baby-GPT training
// step for one lane (384 rows: 6 sequences of 64 tokens, 128 wide, MLP
// 512, vocabulary 65) on one thread, as pkg/train's lanes run them:
// forward C = X·Wᵀ (NT), input gradient dX = dY·W (NN), weight gradient
// dW += dYᵀ·X (TN, beta 1).
func BenchmarkStepShapes(b *testing.B) {
	shapes := []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"fwd-qkv", false, true, 384, 384, 128},
		{"fwd-proj", false, true, 384, 128, 128},
		{"fwd-fc", false, true, 384, 512, 128},
		{"fwd-fcproj", false, true, 384, 128, 512},
		{"fwd-lmhead", false, true, 384, 65, 128},
		{"dx-qkv", false, false, 384, 128, 384},
		{"dx-proj", false, false, 384, 128, 128},
		{"dx-fc", false, false, 384, 128, 512},
		{"dx-fcproj", false, false, 384, 512, 128},
		{"dx-lmhead", false, false, 384, 128, 65},
		{"dw-qkv", true, false, 384, 128, 384},
		{"dw-proj", true, false, 128, 128, 384},
		{"dw-fc", true, false, 512, 128, 384},
		{"dw-fcproj", true, false, 128, 512, 384},
		{"dw-lmhead", true, false, 65, 128, 384},
	}
	im, err := New(Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	for _, s := range shapes {
		b.Run(fmt.Sprintf("%s-%dx%dx%d", s.name, s.m, s.n, s.k), func(b *testing.B) {
			a, bb, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
			for i := range a {
				a[i] = float32(i%7) * 0.25
			}
			for i := range bb {
				bb[i] = float32(i%5) * 0.5
			}
			ta, tb, lda, ldb, beta := blas.NoTrans, blas.NoTrans, s.k, s.n, float32(0)
			if s.tA {
				ta, lda, beta = blas.Trans, s.m, 1
			}
			if s.tB {
				tb, ldb = blas.Trans, s.k
			}
			for b.Loop() {
				im.Sgemm(ta, tb, s.m, s.n, s.k, 1, a, lda, bb, ldb, beta, c, s.n)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
