//go:build !amd64 || purego

package vecmath

// HasAsm reports whether the assembly kernels run on this CPU.
func HasAsm() bool { return false }

const (
	levelGo = iota
	levelAVX2
	levelAVX512
)

func cpuLevel() int                                              { return levelGo }
func geluLevel(out, x []float32, level int) int                  { return 0 }
func geluGradLevel(dx, dy, x []float32, level int) int           { return 0 }
func geluAsm(out, x []float32) int                               { return 0 }
func geluGradAsm(dx, dy, x []float32) int                        { return 0 }
func geluFwdGradLevel(out, grad, x []float32, level int) int     { return 0 }
func mulAsm(out, a, b []float32) int                             { return 0 }
func expSumAsm(dst, src []float32, shift float32) (int, float32) { return 0, 0 }
func maxAsm(x []float32) (int, float32)                          { return 0, 0 }
func scaleAsm(x []float32, s float32) int                        { return 0 }
func adamwAsm(data, grad, m, v []float32, c *[8]float32) int     { return 0 }

func sumAsm(x []float32) (int, float32)                                     { return 0, 0 }
func sumSqDevAsm(x []float32, m float32) (int, float32)                     { return 0, 0 }
func normAffineAsm(out, x, w, b []float32, m, s float32) int                { return 0 }
func lnGradSumsAsm(g, w, x []float32, m, s float32) (int, float32, float32) { return 0, 0, 0 }
func lnGradApplyAsm(di, dw, db, g, w, x []float32, p *[4]float32) int       { return 0 }

func sumSq64Asm(x []float32) (int, float64) { return 0, 0 }

func addAsm(out, a, b []float32) int { return 0 }

func smallGemmLevel(m, n, k int, alpha float32, a []float32, am, ak int, b []float32, ldb int, beta float32, c []float32, ldc int, level int) int {
	return 0
}

func transposeAsm(dst, src []float32, rows, cols, ld int) bool { return false }

func softmaxGradAsm(p, d []float32) bool { return false }

func softmaxAsm(x []float32) bool { return false }

func lnForwardLevel(out, mean, rstd, x, w, b []float32, c int, eps float32, level int) bool {
	return false
}

func lnBackwardLevel(dinp, dw, db, dout, x, w, mean, rstd []float32, c int, level int) bool {
	return false
}

func softmaxRowsAsm(x []float32, ld, rows, n0, step int) { panic("vecmath: no assembly") }
