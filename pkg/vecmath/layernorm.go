package vecmath

import "math"

// Row kernels of LayerNorm (model.LayerNorm): the statistics and the affine
// map forward, the two row reductions and the update backward, and whole
// blocks of rows (LayerNormForward, LayerNormBackward: one AVX-512 call for
// all rows when the CPU has it). Sums are float32 (8 or 32 partial sums on
// the assembly paths).

// LayerNormForward normalises the len(mean) rows of c values of x into out
// (both (rows,c)): per row m = mean(x), s = 1/√(var(x)+eps) (biased
// variance), out = (x−m)·s·w (+ b; b may be nil), and saves m, s in mean
// and rstd.
func LayerNormForward(out, mean, rstd, x, w, b []float32, c int, eps float32) {
	layerNormForwardAt(out, mean, rstd, x, w, b, c, eps, cpuLevel())
}

func layerNormForwardAt(out, mean, rstd, x, w, b []float32, c int, eps float32, level int) {
	rows := len(mean)
	rstd, x, out, w = rstd[:rows], x[:rows*c], out[:rows*c], w[:c]
	if b != nil {
		b = b[:c]
	}
	if lnForwardLevel(out, mean, rstd, x, w, b, c, eps, level) {
		return
	}
	for i := range rows {
		xi := x[i*c : (i+1)*c]
		m := Sum(xi) / float32(c)
		s := 1 / float32(math.Sqrt(float64(SumSqDev(xi, m)/float32(c)+eps)))
		NormAffine(out[i*c:(i+1)*c], xi, w, b, m, s)
		mean[i], rstd[i] = m, s
	}
}

// LayerNormBackward is the backward pass of LayerNormForward over the same
// rows: with norm = (x−m)·s and g = dout it accumulates dw += Σ norm·g, db
// += Σ g (db may be nil) and dinp += (g·w − mean(g·w) − norm·mean(g·w·norm))·s.
func LayerNormBackward(dinp, dw, db, dout, x, w, mean, rstd []float32, c int) {
	layerNormBackwardAt(dinp, dw, db, dout, x, w, mean, rstd, c, cpuLevel())
}

func layerNormBackwardAt(dinp, dw, db, dout, x, w, mean, rstd []float32, c int, level int) {
	rows := len(mean)
	rstd, x, dout, dinp, w, dw = rstd[:rows], x[:rows*c], dout[:rows*c], dinp[:rows*c], w[:c], dw[:c]
	if db != nil {
		db = db[:c]
	}
	if lnBackwardLevel(dinp, dw, db, dout, x, w, mean, rstd, c, level) {
		return
	}
	invC := 1 / float32(c)
	for i := range rows {
		xi, g := x[i*c:(i+1)*c], dout[i*c:(i+1)*c]
		m, s := mean[i], rstd[i]
		s1, s2 := LNGradSums(g, w, xi, m, s)
		LNGradApply(dinp[i*c:(i+1)*c], dw, db, g, w, xi, m, s, s1*invC, s2*invC)
	}
}

// Sum returns Σ x.
func Sum(x []float32) float32 {
	done, s := 0, float32(0)
	if HasAsm() {
		done, s = sumAsm(x)
	}
	return s + sumGo(x[done:])
}

func sumGo(x []float32) float32 {
	var s float32
	for _, v := range x {
		s += v
	}
	return s
}

// SumSqDev returns Σ (x−m)².
func SumSqDev(x []float32, m float32) float32 {
	done, s := 0, float32(0)
	if HasAsm() {
		done, s = sumSqDevAsm(x, m)
	}
	return s + sumSqDevGo(x[done:], m)
}

func sumSqDevGo(x []float32, m float32) float32 {
	var s float32
	for _, v := range x {
		d := v - m
		s += d * d
	}
	return s
}

// NormAffine sets out = (x−m)·s·w + b; b may be nil (no bias).
func NormAffine(out, x, w, b []float32, m, s float32) {
	n := len(x)
	out, w = out[:n], w[:n]
	if b != nil {
		b = b[:n]
	}
	done := 0
	if HasAsm() {
		done = normAffineAsm(out, x, w, b, m, s)
	}
	if b != nil {
		b = b[done:]
	}
	normAffineGo(out[done:], x[done:], w[done:], b, m, s)
}

func normAffineGo(out, x, w, b []float32, m, s float32) {
	out, w = out[:len(x)], w[:len(x)]
	for j, v := range x {
		o := (v - m) * s * w[j]
		if b != nil {
			o += b[j]
		}
		out[j] = o
	}
}

// LNGradSums returns Σ g·w and Σ g·w·(x−m)·s.
func LNGradSums(g, w, x []float32, m, s float32) (s1, s2 float32) {
	n := len(x)
	g, w = g[:n], w[:n]
	done := 0
	if HasAsm() {
		done, s1, s2 = lnGradSumsAsm(g, w, x, m, s)
	}
	t1, t2 := lnGradSumsGo(g[done:], w[done:], x[done:], m, s)
	return s1 + t1, s2 + t2
}

func lnGradSumsGo(g, w, x []float32, m, s float32) (s1, s2 float32) {
	g, w = g[:len(x)], w[:len(x)]
	for j, v := range x {
		dn := g[j] * w[j]
		s1 += dn
		s2 += dn * ((v - m) * s)
	}
	return s1, s2
}

// LNGradApply accumulates, with norm = (x−m)·s: dw += norm·g, db += g (db
// may be nil) and di += (g·w − c1 − norm·c2)·s.
func LNGradApply(di, dw, db, g, w, x []float32, m, s, c1, c2 float32) {
	n := len(x)
	di, dw, g, w = di[:n], dw[:n], g[:n], w[:n]
	if db != nil {
		db = db[:n]
	}
	done := 0
	if HasAsm() {
		p := [4]float32{m, s, c1, c2}
		done = lnGradApplyAsm(di, dw, db, g, w, x, &p)
	}
	if db != nil {
		db = db[done:]
	}
	lnGradApplyGo(di[done:], dw[done:], db, g[done:], w[done:], x[done:], m, s, c1, c2)
}

func lnGradApplyGo(di, dw, db, g, w, x []float32, m, s, c1, c2 float32) {
	n := len(x)
	di, dw, g, w = di[:n], dw[:n], g[:n], w[:n]
	for j, v := range x {
		norm := (v - m) * s
		dw[j] += norm * g[j]
		if db != nil {
			db[j] += g[j]
		}
		di[j] += (g[j]*w[j] - c1 - norm*c2) * s
	}
}
