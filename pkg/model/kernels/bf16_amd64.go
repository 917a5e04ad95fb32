//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// hasBF16 reports AVX512_BF16 (VDPBF16PS, VCVTNE2PS2BF16) with the
// AVX512BW the packing's word permutes need.
func hasBF16() bool { return cpu.X86.HasAVX512BF16 && cpu.X86.HasAVX512BW }

// cvtBF16AVX512 sets dst[i] = ToBF16(src[i]) for i < n, n a multiple of 32.
//
//go:noescape
func cvtBF16AVX512(dst *uint16, src *float32, n int)

// cvtPairBF16AVX512 sets dst[i] = ToBF16(r0[i]) | ToBF16(r1[i])<<16 for
// i < n, n a multiple of 16.
//
//go:noescape
func cvtPairBF16AVX512(dst *uint32, r0, r1 *float32, n int)

// kern14x32AVX512BF16 sets the 14×32 tile at c (row stride ldc) to
// alpha·A·B + beta·C over k depth pairs, where a holds 14 bf16 pairs per
// step (lda pairs apart; 14 when packed) and b 32 pairs per step (ldb
// apart). Accumulation is fp32 (VDPBF16PS). C is not read when beta is zero.
//
//go:noescape
func kern14x32AVX512BF16(k int, a *uint32, lda int, b *uint32, ldb int, c *float32, ldc int, alpha, beta float32)
