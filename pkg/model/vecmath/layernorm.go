package vecmath

// Row kernels of LayerNorm (model.LayerNorm): the statistics and the affine
// map forward, the two row reductions and the update backward. Sums are
// float32 (8 partial sums on the assembly path).

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
