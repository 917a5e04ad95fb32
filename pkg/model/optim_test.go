package model

import (
	"context"
	"math"
	"sync"
	"testing"
)

func TestAdamWHandComputed(t *testing.T) {
	var b Builder
	w := b.Add("w", 1, 2) // decayed
	bias := b.Add("b", 1) // not decayed
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	copy(p.Data, []float32{1, -2, 0.5})
	o, err := NewAdamW(p, 0.9, 0.99, 1e-8, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	const lr = 0.01
	// Step 1, g = (0.5, -1, 2): m̂ = g, v̂ = g², so each parameter moves by
	// lr·sign(g) (up to eps) after the decay factor (1 − lr·wd) = 0.999.
	copy(p.Grad, []float32{0.5, -1, 2})
	o.Step(p, lr)
	want1 := []float64{1*0.999 - 0.01, -2*0.999 + 0.01, 0.5 - 0.01}
	for i, w := range want1 {
		if math.Abs(float64(p.Data[i])-w) > 1e-6 {
			t.Fatalf("step 1: p[%d] = %v, want %v", i, p.Data[i], w)
		}
	}
	// Step 2, g = (1, 0, -2) for w[0] and b:
	//   m = 0.9·0.05 + 0.1·1 = 0.145,  v = 0.99·0.0025 + 0.01·1 = 0.012475
	//   m̂ = 0.145/0.19, v̂ = 0.012475/0.0199, update = lr·m̂/√v̂
	copy(p.Grad, []float32{1, 0, -2})
	o.Step(p, lr)
	w0 := want1[0]*0.999 - 0.01*(0.145/0.19)/math.Sqrt(0.012475/0.0199)
	//   b: m = 0.9·0.2 − 0.2 = −0.02, v = 0.99·0.04 + 0.04 = 0.0796
	b0 := want1[2] - 0.01*(-0.02/0.19)/math.Sqrt(0.0796/0.0199)
	if math.Abs(float64(p.Data[0])-w0) > 1e-6 || math.Abs(float64(p.Data[2])-b0) > 1e-6 {
		t.Fatalf("step 2: w0 %v (want %v), b %v (want %v)", p.Data[0], w0, p.Data[2], b0)
	}
	if o.Steps != 2 || p.Value(w)[1] == 0 || p.Value(bias)[0] == 0 {
		t.Fatal("step bookkeeping")
	}
}

func TestAdamWRangeMatchesWhole(t *testing.T) {
	g := mustGPT(t, tinyGPTConfig(), 1)
	p := g.Params()
	copy(p.Grad, randSlice(newRNG(2, 2), len(p.Grad), 1))
	whole := append([]float32(nil), p.Data...)
	ow, _ := NewAdamW(&Params{Data: whole, Grad: p.Grad, Views: p.Views}, 0.9, 0.95, 0, 0.1)
	ow.Step(&Params{Data: whole, Grad: p.Grad, Views: p.Views}, 1e-3)
	mid := len(p.Data)/2 + 3 // split inside a tensor
	a, _ := NewAdamWRange(p, 0, mid, 0.9, 0.95, 0, 0.1)
	b, _ := NewAdamWRange(p, mid, len(p.Data), 0.9, 0.95, 0, 0.1)
	a.Step(p, 1e-3)
	b.Step(p, 1e-3)
	if d := maxAbsDiff(whole, p.Data); d != 0 {
		t.Fatalf("two shards differ from one optimizer by %v", d)
	}
}

func TestClipGradNorm(t *testing.T) {
	g := []float32{3, 4}
	if n := ClipGradNorm(g, 1); n != 5 || math.Abs(float64(g[0])-0.6) > 1e-6 || math.Abs(float64(g[1])-0.8) > 1e-6 {
		t.Fatalf("norm %v, clipped %v; want 5, (0.6,0.8)", n, g)
	}
	g = []float32{0.3, 0.4}
	if n := ClipGradNorm(g, 1); math.Abs(n-0.5) > 1e-7 || g[0] != 0.3 {
		t.Fatalf("below the limit: norm %v grads %v", n, g)
	}
}

func TestSchedule(t *testing.T) {
	s := Schedule{LR: 1e-3, MinLR: 1e-4, WarmupIters: 100, DecayIters: 2000}
	nano := func(it int) float64 { // nanoGPT train.py get_lr, verbatim
		if it < 100 {
			return 1e-3 * float64(it+1) / float64(100+1)
		}
		if it > 2000 {
			return 1e-4
		}
		r := float64(it-100) / float64(2000-100)
		return 1e-4 + 0.5*(1+math.Cos(math.Pi*r))*(1e-3-1e-4)
	}
	for _, c := range []struct {
		it   int
		want float64
	}{
		{0, 1e-3 / 101}, {99, 1e-3 * 100 / 101}, {100, 1e-3}, {1050, 5.5e-4}, {2000, 1e-4}, {5000, 1e-4},
	} {
		if got := s.At(c.it); math.Abs(got-c.want) > 1e-12 || math.Abs(got-nano(c.it)) > 1e-15 {
			t.Errorf("At(%d) = %v, want %v", c.it, got, c.want)
		}
	}
	if got := (Schedule{LR: 3e-4, MinLR: 1e-5, WarmupIters: 10, DecayIters: 20, Constant: true}).At(3); got != 3e-4 {
		t.Errorf("constant schedule: %v", got)
	}
}

// Two micro-batches with LossDenom = total targets accumulate exactly the
// gradient of one batch holding both.
func TestGradientAccumulation(t *testing.T) {
	cfg := tinyGPTConfig()
	big := tinyBatch()
	big.Targets[5] = IgnoreIndex // 6 counted targets, 3 in each half
	g := mustGPT(t, cfg, 4)
	if _, err := g.Forward(context.Background(), big, false); err != nil {
		t.Fatal(err)
	}
	if err := g.Backward(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), g.Params().Grad...)

	g.Params().ZeroGrad()
	var total float32
	for r := 0; r < 2; r++ {
		half := &Batch{B: 1, T: 4, Tokens: big.Tokens[r*4 : (r+1)*4], Targets: big.Targets[r*4 : (r+1)*4], LossDenom: 6}
		l, err := g.Forward(context.Background(), half, false)
		if err != nil {
			t.Fatal(err)
		}
		total += l
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := maxAbsDiff(want, g.Params().Grad); d > 1e-6 {
		t.Fatalf("accumulated gradient differs from the big batch by %v", d)
	}
	bigLoss, _ := g.Forward(context.Background(), big, false)
	if math.Abs(float64(total-bigLoss)) > 1e-6 {
		t.Fatalf("summed micro losses %v, big batch loss %v", total, bigLoss)
	}
}

// End to end: AdamW with the schedule and clipping drives a tiny GPT to
// memorise a fixed batch (a deterministic sanity check of the whole loop).
func TestGPTLearnsFixedBatch(t *testing.T) {
	cfg := Config{Arch: ArchGPT, NLayer: 1, NHead: 2, NEmbd: 16, BlockSize: 6, VocabSize: 5}.WithDefaults()
	g := mustGPT(t, cfg, 7)
	b := &Batch{B: 2, T: 6, Tokens: []int32{0, 1, 2, 3, 4, 0, 4, 3, 2, 1, 0, 4},
		Targets: []int32{1, 2, 3, 4, 0, 1, 3, 2, 1, 0, 4, 3}}
	opt, err := NewAdamW(g.Params(), 0.9, 0.95, 0, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	sched := Schedule{LR: 1e-2, MinLR: 1e-3, WarmupIters: 5, DecayIters: 60}
	var first, last float32
	for it := 0; it < 60; it++ {
		loss, err := g.Forward(context.Background(), b, true)
		if err != nil {
			t.Fatal(err)
		}
		if it == 0 {
			first = loss
		}
		last = loss
		g.Params().ZeroGrad()
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
		ClipGradNorm(g.Params().Grad, 1)
		opt.Step(g.Params(), sched.At(it))
	}
	if first < 1.4 || last > 0.1 {
		t.Fatalf("loss %v → %v; want from about ln 5 = 1.61 to below 0.1", first, last)
	}
}

// StepOn splits the range across goroutines; the update is element-wise,
// so every split gives the same bits, step after step.
func TestAdamWStepOnIsBitIdentical(t *testing.T) {
	cfg := tinyGPTConfig()
	cfg.NEmbd, cfg.NHead = 32, 2
	for _, parts := range []int{2, 3, 7} {
		g := mustGPT(t, cfg, 1)
		p := g.Params()
		if len(p.Data) < parts*1024 {
			t.Fatalf("%d parameters: too few to split into %d parts", len(p.Data), parts)
		}
		serial := &Params{Data: append([]float32(nil), p.Data...), Grad: p.Grad, Views: p.Views}
		os, _ := NewAdamW(serial, 0.9, 0.95, 1e-8, 0.1)
		op, _ := NewAdamW(p, 0.9, 0.95, 1e-8, 0.1)
		for step := range 3 {
			copy(p.Grad, randSlice(newRNG(int64(step), 3), len(p.Grad), 1))
			os.Step(serial, 1e-3)
			op.StepOn(p, 1e-3, parts, func(n int, f func(i int)) {
				var wg sync.WaitGroup
				for i := range n {
					wg.Go(func() { f(i) })
				}
				wg.Wait()
			})
			if d := maxAbsDiff(serial.Data, p.Data); d != 0 {
				t.Fatalf("%d parts, step %d: parameters differ from the serial step by %v", parts, step, d)
			}
			if d := maxAbsDiff(os.V, op.V); d != 0 {
				t.Fatalf("%d parts, step %d: second moments differ by %v", parts, step, d)
			}
		}
	}
}
