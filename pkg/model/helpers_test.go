package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randSlice returns n values uniform in [-scale, scale).
func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((rng.Float64()*2 - 1) * scale)
	}
	return s
}

// dot64 is Σ a·b in float64: the scalar loss L = Σ out·R used by the layer checks.
func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// Gradient-check tolerance: central differences with step h on float32
// forward passes. Each component must satisfy
// |numeric − analytic| ≤ gradAtol + gradRtol·max|analytic|.
const (
	gradH    = 1e-2
	gradRtol = 1e-2
	gradAtol = 1e-4
)

// checkGrad compares analytic (the gradient of loss with respect to x) with
// central differences, perturbing every element of x in place.
func checkGrad(t *testing.T, name string, x, analytic []float32, loss func() float64) {
	t.Helper()
	checkGradH(t, name, x, analytic, loss, gradH)
}

func checkGradH(t *testing.T, name string, x, analytic []float32, loss func() float64, h float32) {
	t.Helper()
	if len(x) != len(analytic) {
		t.Fatalf("%s: %d values but %d gradients", name, len(x), len(analytic))
	}
	var scale float64
	for _, g := range analytic {
		scale = math.Max(scale, math.Abs(float64(g)))
	}
	if scale == 0 {
		t.Fatalf("%s: analytic gradient is identically zero; the check would be vacuous", name)
	}
	bad := 0
	for i := range x {
		orig := x[i]
		x[i] = orig + h
		lp := loss()
		x[i] = orig - h
		lm := loss()
		x[i] = orig
		num := (lp - lm) / (2 * float64(h))
		if diff := math.Abs(num - float64(analytic[i])); diff > gradAtol+gradRtol*scale || math.IsNaN(num) {
			if bad < 5 {
				t.Errorf("%s[%d]: numeric %.6g, analytic %.6g (diff %.3g, scale %.3g)", name, i, num, analytic[i], diff, scale)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d gradient components off", name, bad, len(x))
	}
}

// paramsFor builds a Params from a builder and fills it with uniform noise.
func paramsFor(t *testing.T, b *Builder, rng *rand.Rand, scale float64) *Params {
	t.Helper()
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	copy(p.Data, randSlice(rng, len(p.Data), scale))
	return p
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
