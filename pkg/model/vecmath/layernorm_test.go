package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The LayerNorm row kernels against float64 sums, on both paths, with and
// without bias, for lengths with and without a tail.
func TestLayerNormKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	r := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	near := func(got float32, want, scale float64) bool {
		return math.Abs(float64(got)-want) <= 1e-5*math.Max(1, scale)
	}
	for _, n := range []int{1, 8, 13, 128, 771} {
		for _, bias := range []bool{false, true} {
			x, w, g := r(n), r(n), r(n)
			var b []float32
			if bias {
				b = r(n)
			}
			m, s := float32(0.3), float32(1.7)
			var sum, ssd, s1, s2, abs float64
			for j := range x {
				sum += float64(x[j])
				d := float64(x[j]) - float64(m)
				ssd += d * d
				s1 += float64(g[j]) * float64(w[j])
				s2 += float64(g[j]) * float64(w[j]) * d * float64(s)
				abs += math.Abs(float64(x[j])) + math.Abs(float64(g[j]*w[j])*d*float64(s))
			}
			for _, p := range paths(t) {
				var gotSum, gotSSD, g1, g2 float32
				out := make([]float32, n)
				di, dw := r(n), r(n)
				var db []float32
				if bias {
					db = r(n)
				}
				wantDi, wantDw := append([]float32(nil), di...), append([]float32(nil), dw...)
				wantDb := append([]float32(nil), db...)
				c1, c2 := float32(0.11), float32(-0.07)
				if p.asm {
					gotSum, gotSSD = Sum(x), SumSqDev(x, m)
					NormAffine(out, x, w, b, m, s)
					g1, g2 = LNGradSums(g, w, x, m, s)
					LNGradApply(di, dw, db, g, w, x, m, s, c1, c2)
				} else {
					gotSum, gotSSD = sumGo(x), sumSqDevGo(x, m)
					normAffineGo(out, x, w, b, m, s)
					g1, g2 = lnGradSumsGo(g, w, x, m, s)
					lnGradApplyGo(di, dw, db, g, w, x, m, s, c1, c2)
				}
				if !near(gotSum, sum, abs) || !near(gotSSD, ssd, ssd) || !near(g1, s1, abs) || !near(g2, s2, abs) {
					t.Fatalf("%s n=%d: sums %v %v %v %v, want %v %v %v %v", p.name, n, gotSum, gotSSD, g1, g2, sum, ssd, s1, s2)
				}
				for j := range x {
					norm := (float64(x[j]) - float64(m)) * float64(s)
					o := norm * float64(w[j])
					if bias {
						o += float64(b[j])
						if !near(db[j], float64(wantDb[j])+float64(g[j]), 1) {
							t.Fatalf("%s n=%d: db[%d] %v", p.name, n, j, db[j])
						}
					}
					wdi := float64(wantDi[j]) + (float64(g[j])*float64(w[j])-float64(c1)-norm*float64(c2))*float64(s)
					if !near(out[j], o, math.Abs(o)) || !near(dw[j], float64(wantDw[j])+norm*float64(g[j]), 1) || !near(di[j], wdi, math.Abs(wdi)) {
						t.Fatalf("%s n=%d bias %v: element %d: out %v/%v dw %v di %v/%v", p.name, n, bias, j, out[j], o, dw[j], di[j], wdi)
					}
				}
			}
		}
	}
}
