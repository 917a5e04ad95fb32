//go:build amd64 && !purego

package vecmath

import "golang.org/x/sys/cpu"

// HasAsm reports whether the assembly kernels run on this CPU.
func HasAsm() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

//go:noescape
func geluAVX2(out, x *float32, n int)

//go:noescape
func geluGradAVX2(dx, dy, x *float32, n int)

//go:noescape
func expSumAVX2(dst, src *float32, n int, shift float32) float32

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func scaleAVX2(x *float32, n int, s float32)

//go:noescape
func adamwAVX2(data, grad, m, v *float32, n int, c *[8]float32)

// The asm* functions run the assembly on the first len&^7 elements and
// return how many they did.

// Levels of assembly a kernel may use: none, AVX2+FMA, AVX-512F (GELU,
// SmallGemm, SoftmaxRows, the LayerNorm blocks; the other kernels stop at
// AVX2).
const (
	levelGo = iota
	levelAVX2
	levelAVX512
)

// cpuLevel is the highest level this CPU runs.
func cpuLevel() int {
	switch {
	case !HasAsm():
		return levelGo
	case cpu.X86.HasAVX512F:
		return levelAVX512
	}
	return levelAVX2
}

//go:noescape
func geluAVX512(out, x *float32, n int)

//go:noescape
func geluGradAVX512(dx, dy, x *float32, n int)

func geluAsm(out, x []float32) int { return geluLevel(out, x, cpuLevel()) }

// geluLevel runs the assembly of level on a prefix of x and returns its length.
func geluLevel(out, x []float32, level int) int {
	done := 0
	if level >= levelAVX512 {
		if n := len(x) &^ 15; n > 0 {
			geluAVX512(&out[0], &x[0], n)
			done = n
		}
	}
	if level >= levelAVX2 {
		if n := (len(x) - done) &^ 7; n > 0 {
			geluAVX2(&out[done], &x[done], n)
			done += n
		}
	}
	return done
}

func geluGradAsm(dx, dy, x []float32) int { return geluGradLevel(dx, dy, x, cpuLevel()) }

// geluGradLevel runs the assembly of level on a prefix of x and returns its length.
func geluGradLevel(dx, dy, x []float32, level int) int {
	done := 0
	if level >= levelAVX512 {
		if n := len(x) &^ 15; n > 0 {
			geluGradAVX512(&dx[0], &dy[0], &x[0], n)
			done = n
		}
	}
	if level >= levelAVX2 {
		if n := (len(x) - done) &^ 7; n > 0 {
			geluGradAVX2(&dx[done], &dy[done], &x[done], n)
			done += n
		}
	}
	return done
}

//go:noescape
func geluFwdGradAVX2(out, grad, x *float32, n int)

//go:noescape
func geluFwdGradAVX512(out, grad, x *float32, n int)

// geluFwdGradLevel runs the assembly of level on a prefix of x and returns its length.
func geluFwdGradLevel(out, grad, x []float32, level int) int {
	done := 0
	if level >= levelAVX512 {
		if n := len(x) &^ 15; n > 0 {
			geluFwdGradAVX512(&out[0], &grad[0], &x[0], n)
			done = n
		}
	}
	if level >= levelAVX2 {
		if n := (len(x) - done) &^ 7; n > 0 {
			geluFwdGradAVX2(&out[done], &grad[done], &x[done], n)
			done += n
		}
	}
	return done
}

//go:noescape
func mulAVX2(out, a, b *float32, n int)

func mulAsm(out, a, b []float32) int {
	n := len(a) &^ 7
	if n > 0 {
		mulAVX2(&out[0], &a[0], &b[0], n)
	}
	return n
}

func expSumAsm(dst, src []float32, shift float32) (int, float32) {
	n := len(src) &^ 7
	if n == 0 {
		return 0, 0
	}
	return n, expSumAVX2(&dst[0], &src[0], n, shift)
}

func maxAsm(x []float32) (int, float32) {
	n := len(x) &^ 7
	if n == 0 {
		return 0, 0
	}
	return n, maxAVX2(&x[0], n)
}

func scaleAsm(x []float32, s float32) int {
	n := len(x) &^ 7
	if n > 0 {
		scaleAVX2(&x[0], n, s)
	}
	return n
}

func adamwAsm(data, grad, m, v []float32, c *[8]float32) int {
	n := len(data) &^ 7
	if n > 0 {
		adamwAVX2(&data[0], &grad[0], &m[0], &v[0], n, c)
	}
	return n
}

//go:noescape
func sumAVX2(x *float32, n int) float32

//go:noescape
func sumSqDevAVX2(x *float32, n int, m float32) float32

//go:noescape
func normAffineAVX2(out, x, w, b *float32, n int, m, s float32)

//go:noescape
func lnGradSumsAVX2(dy, w, x *float32, n int, m, s float32) (s1, s2 float32)

//go:noescape
func lnGradApplyAVX2(di, dw, db, dy, w, x *float32, n int, p *[4]float32)

// ptr is &s[0], or nil for an empty s.
func ptr(s []float32) *float32 {
	if len(s) == 0 {
		return nil
	}
	return &s[0]
}

func sumAsm(x []float32) (int, float32) {
	n := len(x) &^ 7
	if n == 0 {
		return 0, 0
	}
	return n, sumAVX2(&x[0], n)
}

func sumSqDevAsm(x []float32, m float32) (int, float32) {
	n := len(x) &^ 7
	if n == 0 {
		return 0, 0
	}
	return n, sumSqDevAVX2(&x[0], n, m)
}

func normAffineAsm(out, x, w, b []float32, m, s float32) int {
	n := len(x) &^ 7
	if n > 0 {
		normAffineAVX2(&out[0], &x[0], &w[0], ptr(b), n, m, s)
	}
	return n
}

func lnGradSumsAsm(g, w, x []float32, m, s float32) (int, float32, float32) {
	n := len(x) &^ 7
	if n == 0 {
		return 0, 0, 0
	}
	s1, s2 := lnGradSumsAVX2(&g[0], &w[0], &x[0], n, m, s)
	return n, s1, s2
}

func lnGradApplyAsm(di, dw, db, g, w, x []float32, p *[4]float32) int {
	n := len(x) &^ 7
	if n > 0 {
		lnGradApplyAVX2(&di[0], &dw[0], ptr(db), &g[0], &w[0], &x[0], n, p)
	}
	return n
}

//go:noescape
func sumSq64AVX2(x *float32, n int) float64

func sumSq64Asm(x []float32) (int, float64) {
	n := len(x) &^ 7
	if n == 0 {
		return 0, 0
	}
	return n, sumSq64AVX2(&x[0], n)
}

//go:noescape
func addAVX2(out, a, b *float32, n int)

func addAsm(out, a, b []float32) int {
	n := len(a) &^ 7
	if n > 0 {
		addAVX2(&out[0], &a[0], &b[0], n)
	}
	return n
}

//go:noescape
func smallGemmAVX2(c *float32, ldc int, a *float32, am, ak int, b *float32, ldb, m, k, n int, alpha float32, beta int)

//go:noescape
func smallGemm2x32AVX2(c *float32, ldc int, a *float32, am, ak int, b *float32, ldb, m2, k, n int, alpha float32, beta int)

//go:noescape
func smallGemm8AVX512(c *float32, ldc int, a *float32, am, ak int, b *float32, ldb, m8, k, n int, alpha float32, beta int)

// smallGemmLevel runs the assembly of level on the first n&^7 columns of
// SmallGemm and returns how many columns it did. On AVX-512 it takes rows
// eight at a time over the first n&^15 columns, then the AVX2 kernels do
// the columns and rows left.
func smallGemmLevel(m, n, k int, alpha float32, a []float32, am, ak int, b []float32, ldb int, beta float32, c []float32, ldc int, level int) int {
	n8, n32, m2 := n&^7, n&^31, m/2
	if n8 == 0 || m == 0 || level < levelAVX2 {
		return 0
	}
	bf := 0
	if beta != 0 {
		bf = 1
	}
	if n16, m8 := n&^15, m/8; level >= levelAVX512 && n16 > 0 && m8 > 0 {
		smallGemm8AVX512(&c[0], ldc, &a[0], am, ak, &b[0], ldb, m8, k, n16, alpha, bf)
		if n8 > n16 {
			smallGemmAVX2(&c[n16], ldc, &a[0], am, ak, &b[n16], ldb, 8*m8, k, n8-n16, alpha, bf)
		}
		if r := 8 * m8; r < m {
			smallGemmLevel(m-r, n, k, alpha, a[r*am:], am, ak, b, ldb, beta, c[r*ldc:], ldc, levelAVX2)
		}
		return n8
	}
	if n32 > 0 && m2 > 0 {
		// Row pairs × 32-column chunks, then the odd row and the columns left.
		smallGemm2x32AVX2(&c[0], ldc, &a[0], am, ak, &b[0], ldb, m2, k, n32, alpha, bf)
		if m%2 == 1 {
			smallGemmAVX2(&c[(m-1)*ldc], ldc, &a[(m-1)*am], am, ak, &b[0], ldb, 1, k, n32, alpha, bf)
		}
		if n8 > n32 {
			smallGemmAVX2(&c[n32], ldc, &a[0], am, ak, &b[n32], ldb, m, k, n8-n32, alpha, bf)
		}
		return n8
	}
	smallGemmAVX2(&c[0], ldc, &a[0], am, ak, &b[0], ldb, m, k, n8, alpha, bf)
	return n8
}

//go:noescape
func transposeAVX2(dst, src *float32, ldb, kc, nr int)

func transposeAsm(dst, src []float32, rows, cols, ld int) bool {
	if rows%8 != 0 || cols%8 != 0 || rows == 0 || cols == 0 {
		return false
	}
	transposeAVX2(&dst[0], &src[0], ld, cols, rows)
	return true
}

//go:noescape
func softmaxGradAVX2(p, d *float32, n int)

func softmaxGradAsm(p, d []float32) bool {
	if len(p)%8 != 0 || len(p) == 0 {
		return false
	}
	softmaxGradAVX2(&p[0], &d[0], len(p))
	return true
}

//go:noescape
func softmaxAVX2(x *float32, n int)

func softmaxAsm(x []float32) bool {
	if len(x)%8 != 0 || len(x) == 0 {
		return false
	}
	softmaxAVX2(&x[0], len(x))
	return true
}

//go:noescape
func lnForwardAVX512(out, mean, rstd, x, w, b *float32, rows, c int, eps float32)

//go:noescape
func lnBackwardAVX512(dinp, dw, db, dout, x, w, mean, rstd *float32, rows, c int)

// lnForwardLevel runs LayerNormForward's assembly when level and c allow
// (AVX-512, c a multiple of 16), reporting whether the rows are done (no
// rows counts as done).
func lnForwardLevel(out, mean, rstd, x, w, b []float32, c int, eps float32, level int) bool {
	rows := len(mean)
	if level < levelAVX512 || c%16 != 0 || c == 0 || rows == 0 {
		return rows == 0
	}
	var bp *float32
	if b != nil {
		bp = &b[0]
	}
	lnForwardAVX512(&out[0], &mean[0], &rstd[0], &x[0], &w[0], bp, rows, c, eps)
	return true
}

// lnBackwardLevel is lnForwardLevel for LayerNormBackward.
func lnBackwardLevel(dinp, dw, db, dout, x, w, mean, rstd []float32, c int, level int) bool {
	rows := len(mean)
	if level < levelAVX512 || c%16 != 0 || c == 0 || rows == 0 {
		return rows == 0
	}
	var dbp *float32
	if db != nil {
		dbp = &db[0]
	}
	lnBackwardAVX512(&dinp[0], &dw[0], dbp, &dout[0], &x[0], &w[0], &mean[0], &rstd[0], rows, c)
	return true
}

//go:noescape
func softmaxRowsAVX512(x *float32, ld, rows, n0, step int)

func softmaxRowsAsm(x []float32, ld, rows, n0, step int) {
	softmaxRowsAVX512(&x[0], ld, rows, n0, step)
}
