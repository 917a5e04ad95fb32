//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:generate go run ./internal/asmgen kernel_amd64.s

// kern14x32AVX512 sets the 14×32 tile at c (row stride ldc) to
// alpha·A·B + beta·C, where a is a k-major 14×k panel (14 consecutive floats
// per depth step, steps lda apart; lda = 14 when packed) and b a k×32 panel
// of row stride ldb (32 when packed). C is not read when beta is zero.
//
//go:noescape
func kern14x32AVX512(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

// kern6x16AVX2 sets the 6×16 tile at c (row stride ldc) to alpha·A·B + beta·C,
// where a is a k-major 6×k panel (steps lda apart, 6 when packed) and b a
// k×16 panel of row stride ldb (16 when packed). C is not read when beta is
// zero.
//
//go:noescape
func kern6x16AVX2(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

// kern14x32AVX512R is kern14x32AVX512 for a row-major 14×k A panel with row
// stride lda.
//
//go:noescape
func kern14x32AVX512R(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

// kern6x16AVX2R is kern6x16AVX2 for a row-major 6×k A panel with row stride
// lda.
//
//go:noescape
func kern6x16AVX2R(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

// kern8x32AVX512 is kern14x32AVX512 for an 8×32 tile (k-major A panel of
// 8 floats per depth step).
//
//go:noescape
func kern8x32AVX512(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

// kern8x32AVX512R is kern8x32AVX512 for a row-major 8×k A panel with row
// stride lda.
//
//go:noescape
func kern8x32AVX512R(k int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

func hasAVX512() bool { return cpu.X86.HasAVX512F }

func hasAVX2() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

// kernelFor returns the micro-kernel and blocking of path p, or nil for
// Generic.
func kernelFor(p Path) *microKernel {
	switch p {
	case AVX512:
		// direct 2²⁵: measured on baby GPT with one lane per core (M = 384):
		// +4 % tokens/s over 2²¹, no GEMM benchmark shape slower.
		short := &microKernel{mr: 8, nr: 32, fn: kern8x32AVX512, fnR: kern8x32AVX512R}
		// kcOne 384: a lane's weight gradients (K = 384 rows) in one depth
		// block: +2 % on baby GPT, up to +8 % on those products alone.
		return &microKernel{mr: 14, nr: 32, mc: 14 * 12, kc: 256, kcOne: 384, nc: 2048, direct: 1 << 25, fn: kern14x32AVX512, fnR: kern14x32AVX512R, short: short}
	case AVX2:
		return &microKernel{mr: 6, nr: 16, mc: 6 * 24, kc: 256, nc: 2048, direct: 1 << 21, fn: kern6x16AVX2, fnR: kern6x16AVX2R}
	}
	return nil
}

// spinPause executes one PAUSE: a polling loop that calls it leaves the
// core's resources to an SMT sibling and does not flood the memory system.
//
//go:noescape
func spinPause()
