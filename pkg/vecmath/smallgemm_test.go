package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSmallGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	r := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.Float64()*2 - 1)
		}
		return s
	}
	for _, c := range []struct{ m, n, k int }{
		{1, 8, 1}, {3, 32, 5}, {5, 64, 32}, {7, 45, 9}, {16, 7, 3}, {2, 104, 64}, {1, 1, 1}, {3, 16, 0},
		// eight-row groups (AVX-512): 32- and 16-column chunks, then the
		// AVX2 kernels' columns and rows, then Go's
		{8, 16, 3}, {8, 32, 1}, {13, 48, 7}, {17, 56, 33}, {24, 104, 16}, {64, 61, 16}, {9, 15, 4}} {
		for _, trans := range []bool{false, true} {
			for _, beta := range []float32{0, 1} {
				lda := c.k + 3
				am, ak := lda, 1
				aLen := c.m * lda
				if trans { // A stored as (k,m) with row stride lda
					lda = c.m + 2
					am, ak = 1, lda
					aLen = max(c.k, 1) * lda
				}
				ldb, ldc := c.n+5, c.n+1
				a, b, c0 := r(aLen), r(max(c.k, 1)*ldb), r(c.m*ldc)
				alpha := float32(0.7)
				want := make([]float64, len(c0))
				for i := range want {
					want[i] = float64(c0[i])
				}
				for i := 0; i < c.m; i++ {
					for j := 0; j < c.n; j++ {
						var s float64
						for p := 0; p < c.k; p++ {
							s += float64(a[i*am+p*ak]) * float64(b[p*ldb+j])
						}
						want[i*ldc+j] = float64(beta)*want[i*ldc+j] + float64(alpha)*s
					}
				}
				for _, p := range paths(t) {
					got := append([]float32(nil), c0...)
					if c.k == 0 {
						SmallGemm(c.m, c.n, c.k, alpha, a, am, ak, b, ldb, beta, got, ldc)
					} else {
						smallGemmAt(c.m, c.n, c.k, alpha, a, am, ak, b, ldb, beta, got, ldc, p.level)
					}
					for i := range got {
						if math.Abs(float64(got[i])-want[i]) > 1e-5*float64(c.k+1) {
							t.Fatalf("%s %+v trans %v beta %v: C[%d] = %v, want %v", p.name, c, trans, beta, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

func TestSmallGemmChecksLengths(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a short C did not panic")
		}
	}()
	SmallGemm(2, 8, 2, 1, make([]float32, 4), 2, 1, make([]float32, 16), 8, 0, make([]float32, 15), 8)
}

// Rows computed in groups (the AVX2 kernel's row pairs, the AVX-512
// kernel's eights) equal rows computed one at a time, bit for bit, on
// every assembly level: attention's results must not depend on how its row
// blocks fall, nor on the CPU's vector width.
func TestSmallGemmRowsIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const m, n, k = 19, 72, 40
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(rng.Float64()*2 - 1)
	}
	for i := range b {
		b[i] = float32(rng.Float64()*2 - 1)
	}
	for _, p := range paths(t) {
		if !p.asm {
			continue
		}
		for _, beta := range []float32{0, 1} {
			all, one := make([]float32, m*n), make([]float32, m*n)
			for i := range all {
				all[i] = float32(i%5) * 0.25
				one[i] = all[i]
			}
			smallGemmAt(m, n, k, 0.5, a, k, 1, b, n, beta, all, n, p.level)
			for i := range m {
				smallGemmAt(1, n, k, 0.5, a[i*k:], k, 1, b, n, beta, one[i*n:], n, levelAVX2)
			}
			for i := range all {
				if all[i] != one[i] {
					t.Fatalf("%s beta %v: C[%d,%d] = %v computed with its neighbours, %v alone on AVX2", p.name, beta, i/n, i%n, all[i], one[i])
				}
			}
		}
	}
}
