package model

import (
	"math"
	"testing"
)

func TestParamsBuilder(t *testing.T) {
	var b Builder
	w := b.Add("a.weight", 3, 4)
	bias := b.Add("a.bias", 3)
	b.Alias("tied.weight", "a.weight")
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset != 0 || bias.Offset != 12 || p.NumParams() != 15 || !w.Decay || bias.Decay {
		t.Fatalf("layout: %+v %+v n=%d", w, bias, p.NumParams())
	}
	if v, ok := p.Lookup("tied.weight"); !ok || v.Name != "a.weight" {
		t.Fatalf("alias lookup: %+v %v", v, ok)
	}
	if _, ok := p.Lookup("nope"); ok {
		t.Fatal("lookup of unknown name succeeded")
	}
	p.Value(bias)[0] = 7
	if p.Data[12] != 7 {
		t.Fatal("Value is not a view into Data")
	}
	p.Gradient(w)[1] = 3
	p.ZeroGrad()
	if p.Grad[1] != 0 {
		t.Fatal("ZeroGrad left a gradient")
	}
	var dup Builder
	dup.Add("x", 1)
	dup.Add("x", 2)
	if _, err := dup.Build(); err == nil {
		t.Fatal("duplicate name accepted")
	}
}

func TestLinearGrad(t *testing.T) {
	for _, bias := range []bool{true, false} {
		rng := newRNG(1, 0)
		var b Builder
		l := NewLinear(&b, "fc", 5, 3, bias)
		p := paramsFor(t, &b, rng, 1)
		const n = 4
		x := randSlice(rng, n*5, 1)
		r := randSlice(rng, n*3, 1)
		out := make([]float32, n*3)
		loss := func() float64 { l.Forward(p, out, x, n); return dot64(out, r) }
		loss()
		// y = x·Wᵀ + b checked directly for one element.
		want := float64(0)
		for k := 0; k < 5; k++ {
			want += float64(x[5+k]) * float64(p.Value(l.W)[2*5+k])
		}
		if bias {
			want += float64(p.Value(l.B)[2])
		}
		if math.Abs(want-float64(out[3+2])) > 1e-5 {
			t.Fatalf("forward: got %v want %v", out[5], want)
		}
		dx := make([]float32, n*5)
		l.Backward(p, dx, r, x, n)
		checkGrad(t, "linear dx", x, dx, loss)
		checkGrad(t, "linear dW", p.Value(l.W), p.Gradient(l.W), loss)
		if bias {
			checkGrad(t, "linear db", p.Value(l.B), p.Gradient(l.B), loss)
		}
		// Backward accumulates.
		before := append([]float32(nil), p.Gradient(l.W)...)
		l.Backward(p, dx, r, x, n)
		for i, g := range p.Gradient(l.W) {
			if math.Abs(float64(g-2*before[i])) > 1e-5 {
				t.Fatalf("second Backward did not accumulate: %v vs 2·%v", g, before[i])
			}
		}
	}
}

func TestEmbeddingGrad(t *testing.T) {
	rng := newRNG(2, 0)
	var b Builder
	e := NewEmbedding(&b, "wte", 7, 4)
	pos := NewEmbedding(&b, "wpe", 5, 4)
	p := paramsFor(t, &b, rng, 1)
	ids := []int32{3, 0, 3, 6, 1, 2} // B=2, T=3, id 3 repeated
	r := randSlice(rng, 6*4, 1)
	out := make([]float32, 6*4)
	loss := func() float64 {
		e.Forward(p, out, ids)
		pos.ForwardPositions(p, out, 2, 3)
		return dot64(out, r)
	}
	loss()
	e.Backward(p, r, ids)
	pos.BackwardPositions(p, r, 2, 3)
	checkGrad(t, "wte", p.Value(e.W), p.Gradient(e.W), loss)
	checkGrad(t, "wpe (used rows)", p.Value(pos.W)[:3*4], p.Gradient(pos.W)[:3*4], loss)
	for _, g := range p.Gradient(pos.W)[3*4:] {
		if g != 0 {
			t.Fatal("unused positions got gradient")
		}
	}
}

func TestSinusoidal(t *testing.T) {
	pe := SinusoidalTable(10, 6)
	for _, c := range []struct {
		pos, col int
		want     float64
	}{
		{0, 0, 0}, {0, 1, 1}, {3, 0, math.Sin(3)}, {3, 1, math.Cos(3)},
		{5, 2, math.Sin(5 / math.Pow(10000, 2.0/6))}, {5, 5, math.Cos(5 / math.Pow(10000, 4.0/6))},
	} {
		if got := float64(pe[c.pos*6+c.col]); math.Abs(got-c.want) > 1e-6 {
			t.Errorf("PE[%d,%d] = %v, want %v", c.pos, c.col, got, c.want)
		}
	}
	x := make([]float32, 2*3*6)
	AddPositional(x, pe, 2, 3, 6)
	if x[3*6+6+1] != pe[6+1] {
		t.Fatal("AddPositional: row 1 of batch 1 is not PE[1]")
	}
}

func TestLayerNormGrad(t *testing.T) {
	for _, bias := range []bool{true, false} {
		rng := newRNG(3, 0)
		var b Builder
		ln := NewLayerNorm(&b, "ln", 6, 1e-5, bias)
		p := paramsFor(t, &b, rng, 1)
		const n = 3
		x := randSlice(rng, n*6, 2)
		r := randSlice(rng, n*6, 1)
		out, mean, rstd := make([]float32, n*6), make([]float32, n), make([]float32, n)
		loss := func() float64 { ln.Forward(p, out, mean, rstd, x, n); return dot64(out, r) }
		loss()
		// Against a float64 formula for row 1.
		var m, v float64
		for _, xv := range x[6:12] {
			m += float64(xv) / 6
		}
		for _, xv := range x[6:12] {
			v += (float64(xv) - m) * (float64(xv) - m) / 6
		}
		want := (float64(x[6+4]) - m) / math.Sqrt(v+1e-5) * float64(p.Value(ln.W)[4])
		if bias {
			want += float64(p.Value(ln.B)[4])
		}
		if math.Abs(want-float64(out[6+4])) > 1e-5 {
			t.Fatalf("forward: got %v want %v", out[6+4], want)
		}
		dx := make([]float32, n*6)
		ln.Backward(p, dx, r, x, mean, rstd, n)
		checkGrad(t, "ln dx", x, dx, loss)
		checkGrad(t, "ln dW", p.Value(ln.W), p.Gradient(ln.W), loss)
		if bias {
			checkGrad(t, "ln db", p.Value(ln.B), p.Gradient(ln.B), loss)
		}
	}
}

func TestActivationGrad(t *testing.T) {
	for _, c := range []struct {
		act  Activation
		x    float64
		want float64
	}{
		{GELU, 1, 0.8413447460685429},      // torch.nn.GELU()(1.)
		{GELU, -0.5, -0.15426876163482666}, // exact erf form
		{GELUTanh, 1, 0.8411919906082768},  // approximate='tanh'
		{ReLU, -0.3, 0},
		{ReLU, 0.7, 0.7},
	} {
		out := make([]float32, 1)
		ActForward(c.act, out, []float32{float32(c.x)})
		if math.Abs(float64(out[0])-c.want) > 1e-6 {
			t.Errorf("%s(%v) = %v, want %v", c.act, c.x, out[0], c.want)
		}
	}
	for _, act := range []Activation{GELU, GELUTanh, ReLU} {
		t.Run(string(act), func(t *testing.T) {
			rng := newRNG(4, 0)
			x := randSlice(rng, 40, 3)
			for i := range x { // keep ReLU away from its kink
				if math.Abs(float64(x[i])) < 0.05 {
					x[i] = 0.3
				}
			}
			r := randSlice(rng, 40, 1)
			out := make([]float32, 40)
			loss := func() float64 { ActForward(act, out, x); return dot64(out, r) }
			dx := make([]float32, 40)
			ActBackward(act, dx, r, x)
			checkGradH(t, string(act), x, dx, loss, 1e-3)
		})
	}
}

func TestDropout(t *testing.T) {
	d := Dropout{P: 0.25}
	x := make([]float32, 4000)
	for i := range x {
		x[i] = 1
	}
	out, mask := make([]float32, len(x)), make([]float32, len(x))
	d.Forward(newRNG(5, 0), out, mask, x, true)
	zeros := 0
	for i, o := range out {
		switch o {
		case 0:
			zeros++
		case 1 / 0.75:
		default:
			t.Fatalf("out[%d] = %v, want 0 or 1/(1-p)", i, o)
		}
	}
	if zeros < 850 || zeros > 1150 { // 1000 expected, ±~10σ
		t.Fatalf("%d of 4000 dropped, want about 1000", zeros)
	}
	out2 := make([]float32, len(x))
	d.Forward(newRNG(5, 0), out2, make([]float32, len(x)), x, true)
	if maxAbsDiff(out, out2) != 0 {
		t.Fatal("same seed gave a different mask")
	}
	dx := make([]float32, len(x))
	d.Backward(dx, x, mask, true)
	if maxAbsDiff(dx, out) != 0 {
		t.Fatal("backward is not dout·mask")
	}
	d.Forward(nil, out, nil, x, false)
	if maxAbsDiff(out, x) != 0 {
		t.Fatal("eval-mode dropout changed its input")
	}
}

func TestCrossEntropy(t *testing.T) {
	rng := newRNG(6, 0)
	const n, V = 5, 4
	logits := randSlice(rng, n*V, 2)
	targets := []int32{1, IgnoreIndex, 3, 0, IgnoreIndex}
	ce := CrossEntropy{V: V}
	probs := make([]float32, n*V)
	for _, denom := range []float32{0, 7.5} {
		loss, used := ce.Forward(probs, logits, targets, n, denom)
		// Reference: Σ over non-ignored rows of logsumexp − logit[target].
		var want float64
		for i, tg := range targets {
			if tg == IgnoreIndex {
				continue
			}
			var z float64
			for j := 0; j < V; j++ {
				z += math.Exp(float64(logits[i*V+j]))
			}
			want += math.Log(z) - float64(logits[i*V+int(tg)])
		}
		wantDenom := float64(denom)
		if denom == 0 {
			wantDenom = 3
		}
		want /= wantDenom
		if math.Abs(float64(loss)-want) > 1e-5 || float64(used) != wantDenom {
			t.Fatalf("denom %v: loss %v (denom %v), want %v (denom %v)", denom, loss, used, want, wantDenom)
		}
		dl := make([]float32, n*V)
		ce.Backward(dl, probs, targets, n, used, 1)
		for j := 0; j < V; j++ {
			if dl[1*V+j] != 0 || dl[4*V+j] != 0 {
				t.Fatal("ignored row got gradient")
			}
		}
		f := func() float64 { l, _ := ce.Forward(probs, logits, targets, n, denom); return float64(l) }
		checkGradH(t, "ce dlogits", logits, dl, f, 1e-2)
	}
	allIgnored := []int32{IgnoreIndex, IgnoreIndex, IgnoreIndex, IgnoreIndex, IgnoreIndex}
	if loss, d := ce.Forward(probs, logits, allIgnored, n, 0); loss != 0 || d != 0 {
		t.Fatalf("all ignored: loss %v denom %v, want 0 0", loss, d)
	}
}
