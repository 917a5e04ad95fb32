package kernels

import (
	"math"
	"unsafe"
)

// BF16 (bfloat16) is the upper half of an IEEE float32: 1 sign, 8 exponent
// and 7 mantissa bits. Conversions here round to nearest, ties to even, and
// follow the AVX512_BF16 instructions bit for bit, so the vector and Go
// paths agree everywhere: a NaN stays a NaN (its upper bits kept, the quiet
// bit set), ±Inf stays ±Inf, a float32 subnormal becomes ±0 (as
// VCVTNE2PS2BF16, which flushes denormal inputs), and a finite value that
// rounds past the largest bf16 becomes ±Inf.

// ToBF16 rounds f to the nearest bf16 (ties to even).
func ToBF16(f float32) uint16 {
	x := math.Float32bits(f)
	switch {
	case x&0x7fffffff > 0x7f800000: // NaN: truncate, force quiet
		return uint16(x>>16) | 0x40
	case x&0x7f800000 == 0: // ±0 and subnormals: ±0
		return uint16(x>>16) & 0x8000
	}
	x += 0x7fff + (x>>16)&1
	return uint16(x >> 16)
}

// FromBF16 widens h to float32 (exact).
func FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// RoundBF16 returns f rounded to bf16 precision, as a float32.
func RoundBF16(f float32) float32 { return FromBF16(ToBF16(f)) }

// ConvertBF16 sets dst[i] = ToBF16(src[i]) for every i < len(src); dst
// must be at least as long. On AVX512_BF16 CPUs it runs VCVTNE2PS2BF16,
// 32 values per instruction.
func ConvertBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if hasBF16() {
		n = len(src) &^ 31
		if n > 0 {
			cvtBF16AVX512(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = ToBF16(src[i])
	}
}

// WidenBF16 sets dst[i] = FromBF16(src[i]) for every i < len(src).
func WidenBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = FromBF16(h)
	}
}

// RoundBF16Slice sets dst[i] = RoundBF16(src[i]); dst and src may be the
// same slice.
func RoundBF16Slice(dst, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = RoundBF16(f)
	}
}

// convertPairs sets dst[i] = bf16(r0[i]) | bf16(r1[i])<<16: two depth steps
// of a panel as the bf16 pairs VDPBF16PS multiplies. r1 nil means a zero
// second step (an odd depth's last pair).
func convertPairs(dst []uint32, r0, r1 []float32) {
	dst = dst[:len(r0)]
	n := 0
	if r1 != nil {
		r1 = r1[:len(r0)]
		if hasBF16() {
			n = len(r0) &^ 15
			if n > 0 {
				cvtPairBF16AVX512(&dst[0], &r0[0], &r1[0], n)
			}
		}
		for i := n; i < len(r0); i++ {
			dst[i] = uint32(ToBF16(r0[i])) | uint32(ToBF16(r1[i]))<<16
		}
		return
	}
	for i := range r0 {
		dst[i] = uint32(ToBF16(r0[i]))
	}
}

// u16 views a []uint32 as twice as many uint16s (little-endian: word 2i
// is the low half of element i).
func u16(s []uint32) []uint16 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&s[0])), 2*len(s))
}
