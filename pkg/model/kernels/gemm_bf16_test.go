package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
)

// TestGemmBF16MatchesReference runs the bf16 GEMM — the VDPBF16PS kernel
// where the CPU has it, on 1 and 2 threads, and the portable path forced
// over every fp32 path — on unrounded operands against a float64 reference
// on the bf16-rounded ones: every transpose, odd shapes and depths (odd k
// leaves a half-empty last pair), padded strides, alpha/beta with NaNs in C
// when beta = 0. Bound (runCase): |got−want| ≤ 1e-5·√k·(|α|·Σ|a·b| + |β·c|):
// products of bf16 values are exact in fp32, so only the fp32 sums round,
// as in the fp32 test.
func TestGemmBF16MatchesReference(t *testing.T) {
	type variant struct {
		path     Path
		portable bool
		threads  int
	}
	var vs []variant
	if hasBF16() {
		vs = append(vs, variant{AVX512, false, 1}, variant{AVX512, false, 2})
	}
	for _, p := range []Path{AVX512, AVX2, Generic} {
		if Supported(p) {
			vs = append(vs, variant{p, true, 1})
		}
	}
	shapes := append(append([][3]int{}, testShapes...), [3]int{170, 65, 513}, [3]int{14, 2049, 2}, [3]int{169, 33, 1025})
	for _, v := range vs {
		if raceEnabled && v.threads == 1 {
			continue
		}
		t.Run(fmt.Sprintf("%v/portable=%v/threads=%d", v.path, v.portable, v.threads), func(t *testing.T) {
			im, err := New(Options{Path: v.path, Threads: v.threads, Precision: BF16, BF16Portable: v.portable})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if im.BF16Native() == v.portable {
				t.Fatalf("BF16Native() = %v with BF16Portable %v", im.BF16Native(), v.portable)
			}
			rng := rand.New(rand.NewPCG(7, uint64(v.path)))
			for _, s := range shapes {
				if raceEnabled && s[0]*s[1]*s[2] > 100000 {
					continue
				}
				for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
					for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
						for _, pad := range []int{0, 3} {
							runCase(t, im, gemmCase{tA: tA, tB: tB, m: s[0], n: s[1], k: s[2], pad: pad}, rng)
						}
					}
				}
			}
		})
	}
}

// TestGemmBF16RoundsInputs checks the kernel really works on bf16: with
// A = 1 + 2⁻¹⁰ (not a bf16; it rounds to 1) the product is exactly k, where
// fp32 would give k·(1 + 2⁻¹⁰).
func TestGemmBF16RoundsInputs(t *testing.T) {
	for _, portable := range []bool{false, true} {
		if !portable && !hasBF16() {
			continue
		}
		im, err := New(Options{Threads: 1, BF16Portable: portable})
		if err != nil {
			t.Fatal(err)
		}
		const m, n, k = 20, 40, 37
		a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		for i := range a {
			a[i] = 1 + 1.0/1024
		}
		for i := range b {
			b[i] = 1
		}
		im.GemmBF16(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, b, n, 0, c, n)
		for i, v := range c {
			if v != k {
				t.Fatalf("portable=%v: C[%d] = %v, want %d", portable, i, v, k)
			}
		}
		im.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, b, n, 0, c, n)
		if want := float32(k * (1 + 1.0/1024)); math.Abs(float64(c[0]-want)) > 1e-4 {
			t.Fatalf("fp32 Sgemm: C[0] = %v, want %v", c[0], want)
		}
		im.Close()
	}
}
