package vecmath

import "math"

// Constants of exp32 (Cephes expf) and erf32 (a two-piece minimax fit in the
// style of N. Juffa's erff: an odd polynomial below 0.9277 and
// 1 − exp(poly(|x|)) above; max abs error ≈ 6e-8 with an exact exp).
const (
	expLo = -87.33654 // exp(expLo) is the smallest normal float32
	expHi = 88.37626
	log2e = 1.44269504088896341
	ln2Hi = 0.693359375
	ln2Lo = -2.12194440e-4

	rsqrt2   = 0.70710678118654752 // 1/√2
	rsqrt2pi = 0.39894228040143268 // 1/√(2π)
)

// Exp32 is exp(x) in float32 (within 2 ulp for normal results; results
// below the smallest normal are clamped to about 1.2e-38).
func Exp32(x float32) float32 {
	x = min(max(x, expLo), expHi)
	n := float32(math.RoundToEven(float64(x * log2e)))
	x -= n * ln2Hi
	x -= n * ln2Lo
	p := float32(1.9875691500e-4)
	p = p*x + 1.3981999507e-3
	p = p*x + 8.3334519073e-3
	p = p*x + 4.1665795894e-2
	p = p*x + 1.6666665459e-1
	p = p*x + 5.0000001201e-1
	p = p*x + 1
	p = p*x + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// Erf32 is erf(x) in float32, max abs error about 1e-7.
func Erf32(x float32) float32 {
	t := min(float32(math.Abs(float64(x))), 10)
	s := t * t
	if t <= 0.927734375 {
		r := float32(-5.96761703e-4)
		r = r*s + 4.99119423e-3
		r = r*s - 2.67681349e-2
		r = r*s + 1.12819925e-1
		r = r*s - 3.76125336e-1
		r = r*s + 1.28379166e-1
		return r*x + x
	}
	r := float32(-1.72853470e-5)*t + 3.83197126e-4
	u := float32(-3.88396438e-3)*t + 2.42546219e-2
	r = r*s + u
	r = r*t - 1.06777877e-1
	r = r*t - 6.34846687e-1
	r = r*t - 1.28717512e-1
	r = r*t - t
	r = 1 - Exp32(r)
	if x < 0 {
		r = -r
	}
	return r
}

// Gelu sets out[i] = x·Φ(x) = 0.5·x·(1+erf(x/√2)) for x = in[i].
func Gelu(out, in []float32) {
	out = out[:len(in)]
	done := 0
	if HasAsm() {
		done = geluAsm(out, in)
	}
	geluGo(out[done:], in[done:])
}

func geluGo(out, in []float32) {
	out = out[:len(in)]
	for i, x := range in {
		h := 0.5 * x
		out[i] = h*Erf32(x*rsqrt2) + h
	}
}

// GeluGrad accumulates dx[i] += (Φ(x) + x·φ(x))·dy[i] for x = in[i], the
// derivative of Gelu.
func GeluGrad(dx, dy, in []float32) {
	dx, dy = dx[:len(in)], dy[:len(in)]
	done := 0
	if HasAsm() {
		done = geluGradAsm(dx, dy, in)
	}
	geluGradGo(dx[done:], dy[done:], in[done:])
}

func geluGradGo(dx, dy, in []float32) {
	dx, dy = dx[:len(in)], dy[:len(in)]
	for i, x := range in {
		z := x * rsqrt2
		cdf := 0.5*Erf32(z) + 0.5
		t := min(float32(math.Abs(float64(z))), 10)
		pdf := Exp32(-(t * t)) * rsqrt2pi
		dx[i] += (cdf + x*pdf) * dy[i]
	}
}

// GeluFwdGrad sets out[i] = Gelu(x) and grad[i] = Φ(x) + x·φ(x), the
// derivative GeluGrad multiplies by, for x = in[i], from one erf per
// element: a forward pass that keeps grad (it may overwrite in) makes the
// backward pass a multiplication (Mul) instead of a second erf. Same bits
// as Gelu and as GeluGrad into zeros.
func GeluFwdGrad(out, grad, in []float32) {
	geluFwdGradAt(out, grad, in, cpuLevel())
}

func geluFwdGradAt(out, grad, in []float32, level int) {
	out, grad = out[:len(in)], grad[:len(in)]
	done := geluFwdGradLevel(out, grad, in, level)
	geluFwdGradGo(out[done:], grad[done:], in[done:])
}

func geluFwdGradGo(out, grad, in []float32) {
	out, grad = out[:len(in)], grad[:len(in)]
	for i, x := range in {
		z := x * rsqrt2
		e := Erf32(z)
		h := 0.5 * x
		out[i] = h*e + h
		t := min(float32(math.Abs(float64(z))), 10)
		pdf := Exp32(-(t * t)) * rsqrt2pi
		grad[i] = (0.5*e + 0.5) + x*pdf
	}
}

// Mul sets out[i] = a[i]·b[i]. out may be a or b.
func Mul(out, a, b []float32) {
	n := len(a)
	out, b = out[:n], b[:n]
	done := 0
	if HasAsm() {
		done = mulAsm(out, a, b)
	}
	for i := done; i < n; i++ {
		out[i] = a[i] * b[i]
	}
}

// ExpSum sets dst[i] = exp(src[i] − shift) and returns their sum. dst may be src.
func ExpSum(dst, src []float32, shift float32) float32 {
	dst = dst[:len(src)]
	done, sum := 0, float32(0)
	if HasAsm() {
		done, sum = expSumAsm(dst, src, shift)
	}
	return sum + expSumGo(dst[done:], src[done:], shift)
}

func expSumGo(dst, src []float32, shift float32) float32 {
	dst = dst[:len(src)]
	var sum float32
	for i, v := range src {
		e := Exp32(v - shift)
		dst[i] = e
		sum += e
	}
	return sum
}

// Max returns the largest element of x (−Inf for an empty x; NaNs are not handled).
func Max(x []float32) float32 {
	done, m := 0, float32(math.Inf(-1))
	if HasAsm() {
		done, m = maxAsm(x)
		if done == 0 {
			m = float32(math.Inf(-1))
		}
	}
	return max(m, maxGo(x[done:]))
}

func maxGo(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	return m
}

// Scale multiplies x by s in place.
func Scale(x []float32, s float32) {
	done := 0
	if HasAsm() {
		done = scaleAsm(x, s)
	}
	scaleGo(x[done:], s)
}

func scaleGo(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// AdamW is one torch.optim.AdamW update of data from grad with moments m
// and v (all the same length):
//
//	data *= decay; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²
//	data −= stepSize·m / (√v/bc2Sqrt + eps)
//
// in float32 with the operations in this order (the assembly gives
// bit-identical results).
func AdamW(data, grad, m, v []float32, decay, beta1, beta2, stepSize, bc2Sqrt, eps float32) {
	n := len(data)
	grad, m, v = grad[:n], m[:n], v[:n]
	c := [8]float32{decay, beta1, 1 - beta1, beta2, 1 - beta2, stepSize, bc2Sqrt, eps}
	done := 0
	if HasAsm() {
		done = adamwAsm(data, grad, m, v, &c)
	}
	adamwGo(data[done:], grad[done:], m[done:], v[done:], &c)
}

func adamwGo(data, grad, m, v []float32, c *[8]float32) {
	n := len(data)
	grad, m, v = grad[:n], m[:n], v[:n]
	decay, b1, b1c, b2, b2c, step, bc2, eps := c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
	for i, g := range grad {
		data[i] *= decay
		m[i] = m[i]*b1 + b1c*g
		v[i] = v[i]*b2 + b2c*g*g
		data[i] -= step * m[i] / (float32(math.Sqrt(float64(v[i])))/bc2 + eps)
	}
}

// SumSq64 returns Σ x² accumulated in float64 (the gradient norm).
func SumSq64(x []float32) float64 {
	done, s := 0, 0.0
	if HasAsm() {
		done, s = sumSq64Asm(x)
	}
	return s + sumSq64Go(x[done:])
}

func sumSq64Go(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

// Add sets out = a + b element-wise (len(a) elements); out may alias a or b.
func Add(out, a, b []float32) {
	n := len(a)
	out, b = out[:n], b[:n]
	done := 0
	if HasAsm() {
		done = addAsm(out, a, b)
	}
	addGo(out[done:], a[done:], b[done:])
}

func addGo(out, a, b []float32) {
	out, b = out[:len(a)], b[:len(a)]
	for i, v := range a {
		out[i] = v + b[i]
	}
}

// Transpose sets dst (cols,rows), row-major, to the transpose of the
// (rows,cols) matrix src with row stride ld: dst[p*rows+j] = src[j*ld+p].
func Transpose(dst, src []float32, rows, cols, ld int) {
	if rows == 0 || cols == 0 {
		return
	}
	dst = dst[:rows*cols]
	src = src[:(rows-1)*ld+cols]
	if HasAsm() && transposeAsm(dst, src, rows, cols, ld) {
		return
	}
	for p := 0; p < cols; p++ {
		d := dst[p*rows : (p+1)*rows]
		for j := range d {
			d[j] = src[j*ld+p]
		}
	}
}

// SoftmaxGrad turns d = dL/dp into dL/dz for p = softmax(z) over one row:
// d = p ⊙ (d − Σ p⊙d). The dot product is summed in eight partial sums on
// the assembly path (so its rounding differs from a sequential loop's).
func SoftmaxGrad(p, d []float32) {
	d = d[:len(p)]
	if HasAsm() && softmaxGradAsm(p, d) {
		return
	}
	var dot float32
	for j, pj := range p {
		dot += pj * d[j]
	}
	for j, pj := range p {
		d[j] = pj * (d[j] - dot)
	}
}

// SoftmaxRows turns each of rows rows of x (row stride ld, ld floats each)
// into probabilities over its first n = min(n0 + r·step, ld) entries (row
// r), with exactly 0 in the rest (a row with n = 0 is all 0): for causal
// attention rows i0.. over S keys, n0 = i0+1 and step 1. On AVX-512 it is
// one call for the block (masked loads and stores for each row's last
// partial vector); otherwise Softmax per row.
func SoftmaxRows(x []float32, ld, rows, n0, step int) {
	softmaxRowsAt(x, ld, rows, n0, step, cpuLevel())
}

func softmaxRowsAt(x []float32, ld, rows, n0, step int, level int) {
	if rows <= 0 || ld <= 0 {
		return
	}
	if n0 < 0 || step < 0 {
		panic("vecmath: SoftmaxRows needs n0, step ≥ 0")
	}
	x = x[:rows*ld]
	if level >= levelAVX512 {
		softmaxRowsAsm(x, ld, rows, n0, step)
		return
	}
	negInf := float32(math.Inf(-1))
	for r := range rows {
		row := x[r*ld : (r+1)*ld]
		n := min(n0+r*step, ld)
		// Pad to a multiple of 8 with −Inf (exp gives 0) so the AVX2
		// kernel does the whole row.
		np := min((n+7)&^7, ld)
		for j := n; j < np; j++ {
			row[j] = negInf
		}
		if n > 0 {
			Softmax(row[:np])
		}
		clear(row[n:])
	}
}

// Softmax sets x = softmax(x) (exp(x − max) / Σ). It is Scale(x,
// 1/ExpSum(x, x, Max(x))) in one pass of calls: the same bits.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	if HasAsm() && softmaxAsm(x) {
		return
	}
	Scale(x, 1/ExpSum(x, x, Max(x)))
}
