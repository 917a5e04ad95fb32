package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refBF16 is an independent bit-level reference for ToBF16: it takes the
// two bf16 neighbours of x by truncation, compares their distances to x in
// float64 (exact), and breaks ties towards the even mantissa. Inf is
// treated as 2¹²⁸ for rounding, as IEEE overflow rounding does.
func refBF16(x uint32) uint16 {
	f := math.Float32frombits(x)
	sign := uint16(x>>16) & 0x8000
	switch {
	case f != f:
		return uint16(x>>16) | 0x40
	case math.IsInf(float64(f), 0):
		return uint16(x >> 16)
	case x&0x7f800000 == 0: // zero or subnormal: flushed, as VCVTNE2PS2BF16
		return sign
	}
	val := func(h uint16) float64 {
		if h&0x7fff == 0x7f80 {
			return math.Ldexp(1, 128)
		}
		return math.Abs(float64(math.Float32frombits(uint32(h) << 16)))
	}
	lo := uint16(x>>16) & 0x7fff
	hi := lo + 1
	a := math.Abs(float64(f))
	dlo, dhi := a-val(lo), val(hi)-a
	switch {
	case dlo < dhi:
		return sign | lo
	case dhi < dlo:
		return sign | hi
	case lo&1 == 0:
		return sign | lo
	}
	return sign | hi
}

// bf16Edges are bit patterns worth checking exactly: zeros, subnormals,
// smallest/largest normals, ties (low half 0x8000) with odd and even kept
// parts, values just around ties, Inf, quiet and signalling NaNs, and the
// overflow boundary.
func bf16Edges() []uint32 {
	var e []uint32
	for _, hi := range []uint32{0x0000, 0x0001, 0x007f, 0x0080, 0x0081, 0x3f80, 0x3f81, 0x4049, 0x7f7e, 0x7f7f, 0x7f80, 0x7f81, 0x7fc0, 0x7fff} {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff} {
			e = append(e, hi<<16|lo, 0x80000000|hi<<16|lo)
		}
	}
	return e
}

// TestBF16ConversionReference checks ToBF16 against refBF16 on the edge set
// and random patterns, and (without -short) on all 2³² patterns.
func TestBF16ConversionReference(t *testing.T) {
	check := func(x uint32) {
		if got, want := ToBF16(math.Float32frombits(x)), refBF16(x); got != want {
			t.Fatalf("ToBF16(%#08x) = %#04x, want %#04x", x, got, want)
		}
	}
	for _, x := range bf16Edges() {
		check(x)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 22 {
		check(r.Uint32())
	}
	if testing.Short() {
		return
	}
	for x := uint64(0); x < 1<<32; x++ {
		check(uint32(x))
	}
}

// TestBF16Specials pins the documented behaviour on special values.
func TestBF16Specials(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even kept
		{0x3f818000, 0x3f82}, // tie, odd kept: up
		{0x3f808001, 0x3f81}, // just past the tie
		{0x7f7fffff, 0x7f80}, // rounds past max: +Inf
		{0xff800000, 0xff80}, // -Inf
		{0x7f800001, 0x7fc0}, // signalling NaN: quieted, still NaN
		{0xffc12345, 0xffc1}, // negative quiet NaN keeps its upper payload
		{0x00000001, 0x0000}, // subnormal: +0
		{0x807fffff, 0x8000}, // negative subnormal: -0
		{0x80000000, 0x8000}, // -0
	} {
		if got := ToBF16(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if f := FromBF16(ToBF16(float32(math.NaN()))); f == f {
		t.Error("NaN did not survive the round trip")
	}
}

// TestConvertBF16Vector checks the vector converters (VCVTNE2PS2BF16) bit
// for bit against ToBF16 over all 2³² patterns (2²⁴ random ones with -short).
func TestConvertBF16Vector(t *testing.T) {
	if !hasBF16() {
		t.Skip("no AVX512_BF16: ConvertBF16 runs ToBF16 itself")
	}
	const chunk = 1 << 16
	src := make([]float32, chunk+7)
	dst := make([]uint16, len(src))
	pairs := make([]uint32, chunk/2)
	verify := func(next func(i int) uint32) {
		for i := range src {
			src[i] = math.Float32frombits(next(i))
		}
		ConvertBF16(dst, src) // odd length: vector body and Go tail
		for i, f := range src {
			if want := ToBF16(f); dst[i] != want {
				t.Fatalf("ConvertBF16(%#08x) = %#04x, want %#04x", math.Float32bits(f), dst[i], want)
			}
		}
		convertPairs(pairs, src[:chunk/2], src[chunk/2:chunk])
		for i, p := range pairs {
			lo, hi := ToBF16(src[i]), ToBF16(src[chunk/2+i])
			if p != uint32(lo)|uint32(hi)<<16 {
				t.Fatalf("convertPairs[%d] = %#08x, want %#04x%04x", i, p, hi, lo)
			}
		}
	}
	e := bf16Edges()
	verify(func(i int) uint32 { return e[i%len(e)] })
	if testing.Short() {
		r := rand.New(rand.NewPCG(3, 4))
		for range (1 << 24) / chunk {
			verify(func(int) uint32 { return r.Uint32() })
		}
		return
	}
	for base := uint64(0); base < 1<<32; base += chunk {
		verify(func(i int) uint32 { return uint32(base + uint64(i)) })
	}
}
