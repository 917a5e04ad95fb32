package vecmath

import (
	"math"
	"math/rand/v2"
	"strconv"
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

// LayerNormForward and LayerNormBackward over blocks of rows, on every
// path (AVX-512 needs c to be a multiple of 16; other widths take the row
// kernels), against float64 LayerNorm.
func TestLayerNormRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	r := func(n int, scale, shift float64) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64()*scale + shift)
		}
		return s
	}
	const eps = 1e-5
	for _, c := range []int{16, 48, 128, 13, 40, 144} {
		for _, rows := range []int{1, 5} {
			for _, bias := range []bool{false, true} {
				x, w, g := r(rows*c, 2, 0.7), r(c, 1, 1), r(rows*c, 1, 0)
				var b []float32
				if bias {
					b = r(c, 1, 0)
				}
				di0, dw0 := r(rows*c, 1, 0), r(c, 1, 0)
				var db0 []float32
				if bias {
					db0 = r(c, 1, 0)
				}
				// float64 reference
				wantOut, wantDi := make([]float64, rows*c), make([]float64, rows*c)
				wantDw, wantDb := make([]float64, c), make([]float64, c)
				wantM, wantS := make([]float64, rows), make([]float64, rows)
				for j := range c {
					wantDw[j] = float64(dw0[j])
					if bias {
						wantDb[j] = float64(db0[j])
					}
				}
				for i := range rows {
					xi := x[i*c : (i+1)*c]
					var m, v float64
					for _, e := range xi {
						m += float64(e)
					}
					m /= float64(c)
					for _, e := range xi {
						v += (float64(e) - m) * (float64(e) - m)
					}
					s := 1 / math.Sqrt(v/float64(c)+eps)
					wantM[i], wantS[i] = m, s
					var s1, s2 float64
					for j, e := range xi {
						norm := (float64(e) - m) * s
						o := norm * float64(w[j])
						if bias {
							o += float64(b[j])
						}
						wantOut[i*c+j] = o
						dn := float64(g[i*c+j]) * float64(w[j])
						s1 += dn
						s2 += dn * norm
					}
					for j, e := range xi {
						norm := (float64(e) - m) * s
						gj := float64(g[i*c+j])
						wantDw[j] += norm * gj
						wantDb[j] += gj
						wantDi[i*c+j] = float64(di0[i*c+j]) + (gj*float64(w[j])-s1/float64(c)-norm*s2/float64(c))*s
					}
				}
				for _, p := range paths(t) {
					out, mean, rstd := make([]float32, rows*c), make([]float32, rows), make([]float32, rows)
					layerNormForwardAt(out, mean, rstd, x, w, b, c, eps, p.level)
					di, dw := append([]float32(nil), di0...), append([]float32(nil), dw0...)
					var db []float32
					if bias {
						db = append([]float32(nil), db0...)
					}
					layerNormBackwardAt(di, dw, db, g, x, w, mean, rstd, c, p.level)
					name := func(what string) string {
						return what + " " + p.name + " c=" + itoa(c) + " rows=" + itoa(rows) + map[bool]string{true: " bias", false: ""}[bias]
					}
					for i := range rows {
						if math.Abs(float64(mean[i])-wantM[i]) > 1e-6 || math.Abs(float64(rstd[i])-wantS[i]) > 1e-6*wantS[i] {
							t.Fatalf("%s: row %d mean, rstd %v, %v, want %v, %v", name("stats"), i, mean[i], rstd[i], wantM[i], wantS[i])
						}
					}
					check := func(what string, got []float32, want []float64, tol float64) {
						t.Helper()
						for j := range want {
							if d := math.Abs(float64(got[j]) - want[j]); !(d <= tol*math.Max(1, math.Abs(want[j]))) {
								t.Fatalf("%s[%d] = %v, want %v (diff %.3g)", name(what), j, got[j], want[j], d)
							}
						}
					}
					check("out", out, wantOut, 2e-6)
					check("dinp", di, wantDi, 1e-5)
					check("dw", dw, wantDw, 1e-5)
					if bias {
						check("db", db, wantDb, 1e-5)
					}
				}
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
