//go:build !amd64 || purego

package kernels

func hasBF16() bool { return false }

func cvtBF16AVX512(dst *uint16, src *float32, n int) { panic("kernels: no AVX512_BF16 here") }

func cvtPairBF16AVX512(dst *uint32, r0, r1 *float32, n int) { panic("kernels: no AVX512_BF16 here") }

func kern14x32AVX512BF16(k int, a *uint32, lda int, b *uint32, ldb int, c *float32, ldc int, alpha, beta float32) {
	panic("kernels: no AVX512_BF16 here")
}
