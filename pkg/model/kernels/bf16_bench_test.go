package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// BenchmarkGemmBF16 compares the bf16 GEMM with the fp32 Sgemm at the
// transformer shapes of matmul.py (rows × embd · embd × 4·embd), 2 threads.
func BenchmarkGemmBF16(b *testing.B) {
	for _, s := range [][2]int{{768, 128}, {512, 768}} {
		m, k, n := s[0], s[1], 4*s[1]
		rng := rand.New(rand.NewPCG(1, 1))
		x, w, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for i := range w {
			w[i] = float32(rng.NormFloat64())
		}
		for _, prec := range []Precision{FP32, BF16} {
			b.Run(fmt.Sprintf("%s/rows=%d/embd=%d", prec, m, k), func(b *testing.B) {
				im, err := New(Options{Threads: 2, Precision: prec})
				if err != nil {
					b.Fatal(err)
				}
				defer im.Close()
				for b.Loop() {
					im.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, x, k, w, n, 0, c, n)
				}
				b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
