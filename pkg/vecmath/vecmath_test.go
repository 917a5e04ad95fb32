package vecmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

// A path is one implementation of the kernels: the pure-Go loops, or the
// assembly of a level on the bulk with the pure-Go tail.
type path struct {
	name  string
	level int
	asm   bool // use the exported (dispatching) functions
}

// paths lists the pure-Go path and every assembly level this CPU runs.
func paths(t *testing.T) []path {
	t.Helper()
	ps := []path{{"go", levelGo, false}}
	if cpuLevel() >= levelAVX2 {
		ps = append(ps, path{"avx2", levelAVX2, true})
	}
	if cpuLevel() >= levelAVX512 {
		ps = append(ps, path{"avx512", levelAVX512, true})
	}
	if len(ps) == 1 {
		t.Log("assembly kernels not supported here; testing the pure-Go path only")
	}
	return ps
}

// grid returns n values spread over [lo,hi] plus special points.
func grid(n int, lo, hi float64) []float32 {
	x := make([]float32, 0, n+16)
	for i := 0; i < n; i++ {
		x = append(x, float32(lo+(hi-lo)*float64(i)/float64(n-1)))
	}
	return append(x, 0, -0.927734375, 0.927734375, 0.9277344, -0.9277343, 1e-30, -1e-30, 4, -4, 9.99, 10, 11, -30, 1e6, -1e6, 3.4e38)
}

// odd lengths exercise the pure-Go tails.
func trim(x []float32) []float32 { return x[:len(x)-len(x)%8-3] }

func TestErf32(t *testing.T) {
	var worst float64
	for _, x := range grid(200001, -12, 12) {
		e := math.Abs(float64(Erf32(x)) - math.Erf(float64(x)))
		worst = math.Max(worst, e)
	}
	if worst > 1.2e-7 {
		t.Fatalf("Erf32 max abs error %.3g, want ≤ 1.2e-7", worst)
	}
	t.Logf("Erf32 max abs error %.3g", worst)
}

func TestExp32(t *testing.T) {
	for _, x := range grid(100001, -87, 88) {
		if x < -87 || x > 88 {
			continue
		}
		want := math.Exp(float64(x))
		if rel := math.Abs(float64(Exp32(x))-want) / want; rel > 3e-7 {
			t.Fatalf("Exp32(%v) = %v, want %v (rel err %.3g)", x, Exp32(x), want, rel)
		}
	}
	if e := Exp32(-1000); e < 0 || e > 2e-38 {
		t.Fatalf("Exp32(-1000) = %v, want a tiny non-negative value", e)
	}
}

func geluRef(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
func geluGradRef(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
}

func TestGelu(t *testing.T) {
	x := trim(grid(100003, -14, 14))
	for _, p := range paths(t) {
		out := make([]float32, len(x))
		done := geluLevel(out, x, p.level)
		geluGo(out[done:], x[done:])
		for i, v := range x {
			want := geluRef(float64(v))
			if d := math.Abs(float64(out[i]) - want); d > 2e-7*math.Max(1, math.Abs(want)) {
				t.Fatalf("%s: gelu(%v) = %v, want %v (diff %.3g)", p.name, v, out[i], want, d)
			}
		}
	}
}

func TestGeluGrad(t *testing.T) {
	x := trim(grid(100003, -14, 14))
	rng := rand.New(rand.NewPCG(1, 2))
	dy := make([]float32, len(x))
	dx0 := make([]float32, len(x))
	for i := range dy {
		dy[i] = float32(rng.Float64()*4 - 2)
		dx0[i] = float32(rng.Float64()*2 - 1)
	}
	for _, p := range paths(t) {
		dx := append([]float32(nil), dx0...)
		done := geluGradLevel(dx, dy, x, p.level)
		geluGradGo(dx[done:], dy[done:], x[done:])
		for i, v := range x {
			want := float64(dx0[i]) + geluGradRef(float64(v))*float64(dy[i])
			if d := math.Abs(float64(dx[i]) - want); d > 1e-6 {
				t.Fatalf("%s: dx at x=%v is %v, want %v (diff %.3g)", p.name, v, dx[i], want, d)
			}
		}
	}
}

// GeluFwdGrad gives Gelu's output and the derivative GeluGrad multiplies
// by, bit for bit on every path, also when grad overwrites its input; and
// both are within the float64 references' tolerances.
func TestGeluFwdGrad(t *testing.T) {
	x := trim(grid(100003, -14, 14))
	rng := rand.New(rand.NewPCG(5, 6))
	dy := make([]float32, len(x))
	for i := range dy {
		dy[i] = float32(rng.Float64()*4 - 2)
	}
	for _, p := range paths(t) {
		wantOut := make([]float32, len(x))
		done := geluLevel(wantOut, x, p.level)
		geluGo(wantOut[done:], x[done:])
		wantDx := make([]float32, len(x))
		done = geluGradLevel(wantDx, dy, x, p.level)
		geluGradGo(wantDx[done:], dy[done:], x[done:])
		for _, inPlace := range []bool{false, true} {
			out, grad := make([]float32, len(x)), make([]float32, len(x))
			in := x
			if inPlace {
				in = append([]float32(nil), x...)
				grad = in
			}
			geluFwdGradAt(out, grad, in, p.level)
			dx := make([]float32, len(x))
			Mul(dx, grad, dy)
			for i, v := range x {
				if out[i] != wantOut[i] {
					t.Fatalf("%s in place %v: out at x=%v is %v, Gelu gives %v", p.name, inPlace, v, out[i], wantOut[i])
				}
				if dx[i] != wantDx[i] {
					t.Fatalf("%s in place %v: grad·dy at x=%v is %v, GeluGrad gives %v", p.name, inPlace, v, dx[i], wantDx[i])
				}
				if d := math.Abs(float64(grad[i]) - geluGradRef(float64(v))); d > 1e-6 {
					t.Fatalf("%s in place %v: grad at x=%v is %v, want %v (diff %.3g)", p.name, inPlace, v, grad[i], geluGradRef(float64(v)), d)
				}
			}
		}
	}
}

func TestMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 100} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.Float64()*4-2), float32(rng.Float64()*4-2)
		}
		out := make([]float32, n)
		Mul(out, a, b)
		for i := range out {
			if out[i] != a[i]*b[i] {
				t.Fatalf("n=%d: out[%d] = %v, want %v", n, i, out[i], a[i]*b[i])
			}
		}
		Mul(a, a, b) // in place
		for i := range a {
			if a[i] != out[i] {
				t.Fatalf("n=%d in place: a[%d] = %v, want %v", n, i, a[i], out[i])
			}
		}
	}
}

func TestExpSumMaxScale(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 64, 65, 200} {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(rng.Float64()*40 - 30)
		}
		for _, p := range paths(t) {
			var mx float32
			if p.asm {
				mx = Max(src)
			} else {
				mx = maxGo(src)
			}
			want := float32(math.Inf(-1))
			for _, v := range src {
				want = max(want, v)
			}
			if mx != want {
				t.Fatalf("%s n=%d: max %v, want %v", p.name, n, mx, want)
			}
			dst := make([]float32, n)
			var sum float32
			if p.asm {
				sum = ExpSum(dst, src, mx)
			} else {
				sum = expSumGo(dst, src, mx)
			}
			var wantSum float64
			for i, v := range src {
				e := math.Exp(float64(v - mx))
				wantSum += e
				if math.Abs(float64(dst[i])-e) > 3e-7*e+1e-37 {
					t.Fatalf("%s n=%d: exp[%d] %v, want %v", p.name, n, i, dst[i], e)
				}
			}
			if math.Abs(float64(sum)-wantSum) > 1e-6*wantSum {
				t.Fatalf("%s n=%d: sum %v, want %v", p.name, n, sum, wantSum)
			}
			s := append([]float32(nil), src...)
			if p.asm {
				Scale(s, 0.37)
			} else {
				scaleGo(s, 0.37)
			}
			for i, v := range src {
				if s[i] != v*0.37 {
					t.Fatalf("%s n=%d: scale[%d] %v, want %v", p.name, n, i, s[i], v*0.37)
				}
			}
		}
	}
}

// The AdamW kernel must match the plain loop bit for bit.
func TestAdamWBitExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 1003
	r := func() []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64() * 0.1)
		}
		return s
	}
	data, grad, m, v := r(), r(), r(), r()
	for i := range v {
		v[i] *= v[i]
	}
	decay, b1, b2, step, bc2, eps := float32(0.9999), float32(0.9), float32(0.99), float32(1e-3), float32(0.3), float32(1e-8)
	// The reference loop, written out as in model.AdamW.Step.
	wd, wm, wv := append([]float32(nil), data...), append([]float32(nil), m...), append([]float32(nil), v...)
	for i, g := range grad {
		wd[i] *= decay
		wm[i] = wm[i]*b1 + (1-b1)*g
		wv[i] = wv[i]*b2 + (1-b2)*g*g
		wd[i] -= step * wm[i] / (float32(math.Sqrt(float64(wv[i])))/bc2 + eps)
	}
	for _, p := range paths(t) {
		d, mm, vv := append([]float32(nil), data...), append([]float32(nil), m...), append([]float32(nil), v...)
		if p.asm {
			AdamW(d, grad, mm, vv, decay, b1, b2, step, bc2, eps)
		} else {
			c := [8]float32{decay, b1, 1 - b1, b2, 1 - b2, step, bc2, eps}
			adamwGo(d, grad, mm, vv, &c)
		}
		for i := range d {
			if d[i] != wd[i] || mm[i] != wm[i] || vv[i] != wv[i] {
				t.Fatalf("%s: element %d: data %v/%v m %v/%v v %v/%v", p.name, i, d[i], wd[i], mm[i], wm[i], vv[i], wv[i])
			}
		}
	}
}

func BenchmarkGelu(b *testing.B) {
	x := grid(393216-16, -5, 5)
	out := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		Gelu(out, x)
	}
}

func BenchmarkGeluGrad(b *testing.B) {
	x := grid(393216-16, -5, 5)
	dx := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		GeluGrad(dx, x, x)
	}
}

func TestSumSq64(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 3, 8, 17, 10007} {
		x := make([]float32, n)
		var want float64
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 1e-3)
			want += float64(x[i]) * float64(x[i])
		}
		for _, p := range paths(t) {
			got := sumSq64Go(x)
			if p.asm {
				got = SumSq64(x)
			}
			if math.Abs(got-want) > 1e-12*want {
				t.Fatalf("%s n=%d: %v, want %v", p.name, n, got, want)
			}
		}
	}
}

func TestAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{0, 5, 8, 31, 32, 77, 1000} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		for _, p := range paths(t) {
			out := make([]float32, n)
			if p.asm {
				Add(out, a, b)
			} else {
				addGo(out, a, b)
			}
			for i := range out {
				if out[i] != a[i]+b[i] {
					t.Fatalf("%s n=%d: out[%d] = %v, want %v", p.name, n, i, out[i], a[i]+b[i])
				}
			}
			inPlace := append([]float32(nil), a...)
			if p.asm {
				Add(inPlace, inPlace, b)
			} else {
				addGo(inPlace, inPlace, b)
			}
			for i := range inPlace {
				if inPlace[i] != a[i]+b[i] {
					t.Fatalf("%s n=%d in place: [%d] = %v, want %v", p.name, n, i, inPlace[i], a[i]+b[i])
				}
			}
		}
	}
}

func TestTranspose(t *testing.T) {
	for _, c := range []struct{ rows, cols, ld int }{{8, 8, 8}, {64, 32, 384}, {16, 24, 40}, {7, 5, 9}, {64, 30, 33}, {1, 1, 1}} {
		src := make([]float32, (c.rows-1)*c.ld+c.cols)
		for i := range src {
			src[i] = float32(i)
		}
		dst := make([]float32, c.rows*c.cols)
		Transpose(dst, src, c.rows, c.cols, c.ld)
		for j := 0; j < c.rows; j++ {
			for p := 0; p < c.cols; p++ {
				if dst[p*c.rows+j] != src[j*c.ld+p] {
					t.Fatalf("%+v: dst[%d,%d] = %v, want %v", c, p, j, dst[p*c.rows+j], src[j*c.ld+p])
				}
			}
		}
	}
}

func TestSoftmaxGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 7, 8, 16, 40, 64, 65} {
		p, d := make([]float32, n), make([]float32, n)
		for i := range p {
			p[i] = float32(rng.Float64())
			d[i] = float32(rng.Float64()*2 - 1)
		}
		var dot float64
		for i := range p {
			dot += float64(p[i]) * float64(d[i])
		}
		want := make([]float64, n)
		for i := range p {
			want[i] = float64(p[i]) * (float64(d[i]) - dot)
		}
		SoftmaxGrad(p, d)
		for i := range d {
			if diff := math.Abs(float64(d[i]) - want[i]); diff > 1e-5 {
				t.Fatalf("n %d: d[%d] = %v, want %v", n, i, d[i], want[i])
			}
		}
	}
}

// Softmax in one call gives the same bits as its three steps.
func TestSoftmaxMatchesSteps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 8, 16, 40, 64, 65} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.Float64()*20 - 10)
		}
		if n > 1 {
			x[n/2] = float32(math.Inf(-1)) // a masked key
		}
		want := append([]float32(nil), x...)
		Scale(want, 1/ExpSum(want, want, Max(want)))
		Softmax(x)
		for i := range x {
			if x[i] != want[i] {
				t.Fatalf("n %d: softmax[%d] = %v, steps give %v", n, i, x[i], want[i])
			}
		}
	}
}

// SoftmaxRows against float64 softmax over each row's visible prefix, with
// exact zeros after it, on every path: causal blocks (n0 = i0+1, step 1)
// over row lengths with and without a partial vector, rows longer than the
// row (n capped at ld), all-visible rows (step 0) and empty rows (n0 = 0).
func TestSoftmaxRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cases := []struct{ ld, rows, n0, step int }{
		{64, 16, 1, 1}, {64, 16, 49, 1}, {64, 5, 62, 1}, {37, 9, 30, 1},
		{64, 3, 64, 0}, {40, 2, 40, 0}, {17, 4, 0, 1}, {8, 1, 0, 0}, {5, 3, 2, 2},
	}
	for _, c := range cases {
		x0 := make([]float32, c.rows*c.ld)
		for i := range x0 {
			x0[i] = float32(rng.Float64()*16 - 8)
			if r, j := i/c.ld, i%c.ld; j >= c.n0+r*c.step {
				x0[i] = 1e4 // hidden: must not take part
			}
		}
		for _, p := range paths(t) {
			if !p.asm {
				continue // the fallback is Softmax per row, itself tested on every path
			}
			x := append([]float32(nil), x0...)
			softmaxRowsAt(x, c.ld, c.rows, c.n0, c.step, p.level)
			for r := range c.rows {
				n := min(c.n0+r*c.step, c.ld)
				src, got := x0[r*c.ld:(r+1)*c.ld], x[r*c.ld:(r+1)*c.ld]
				mx := math.Inf(-1)
				for _, v := range src[:n] {
					mx = math.Max(mx, float64(v))
				}
				var z float64
				for _, v := range src[:n] {
					z += math.Exp(float64(v) - mx)
				}
				for j := range c.ld {
					want := 0.0
					if j < n {
						want = math.Exp(float64(src[j])-mx) / z
					}
					if d := math.Abs(float64(got[j]) - want); !(d <= 1e-6*math.Max(want, 1e-3)) || (j >= n && got[j] != 0) {
						t.Fatalf("%s %+v: row %d [%d] = %v, want %v", p.name, c, r, j, got[j], want)
					}
				}
			}
		}
	}
}
