package kernels

import (
	"fmt"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// benchShapes are square sizes and the baby GPT's projections (M=B·T=768,
// n_embd=128): qkv 768×128·128×384, MLP up 768×128·128×512, MLP down
// 768×512·512×128.
var benchShapes = []struct {
	name    string
	m, k, n int
}{
	{"128", 128, 128, 128},
	{"256", 256, 256, 256},
	{"512", 512, 512, 512},
	{"1024", 1024, 1024, 1024},
	{"768x128x384", 768, 128, 384},
	{"768x128x512", 768, 128, 512},
	{"768x512x128", 768, 512, 128},
	// attention per (batch, head): scores 64×16·16×64, weighted values 64×64·64×16
	{"64x16x64", 64, 16, 64},
	{"64x64x16", 64, 64, 16},
}

// BenchmarkSgemm reports GFLOP/s (2·m·n·k per call) for every supported path
// (generic is gonum's own Sgemm), 1 and 2 threads, plain (NN) and
// nn.Linear-style (NT: B stored as n×k) products. GOMAXPROCS is set to the
// thread count so gonum's internal parallelism is bounded the same way.
// GFLOP/cpu-s divides by the process CPU time instead of wall time.
func BenchmarkSgemm(b *testing.B) {
	for _, p := range testPaths() {
		for _, threads := range []int{1, 2} {
			for _, s := range benchShapes {
				for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
					op := "NN"
					if tB == blas.Trans {
						op = "NT"
					}
					name := fmt.Sprintf("path=%v/threads=%d/%s/%s", p, threads, op, s.name)
					b.Run(name, func(b *testing.B) {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
						benchOne(b, p, threads, s.m, s.k, s.n, tB)
					})
				}
			}
		}
	}
}

func benchOne(b *testing.B, p Path, threads, m, k, n int, tB blas.Transpose) {
	im, err := New(Options{Path: p, Threads: threads})
	if err != nil {
		b.Skip(err)
	}
	defer im.Close()
	a, bb, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	for i := range a {
		a[i] = float32(i%7) * 0.25
	}
	for i := range bb {
		bb[i] = float32(i%5) * 0.5
	}
	ldb := n
	if tB == blas.Trans {
		ldb = k
	}
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		im.Sgemm(blas.NoTrans, tB, m, n, k, 1, a, k, bb, ldb, 0, c, n)
	}
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := processCPU() - cpu0; cpu > 0 {
		// Per CPU-second used: on a shared host this discounts time spent
		// descheduled (at 1 thread it is the per-core speed).
		b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
	}
}
