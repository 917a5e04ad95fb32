package tp_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel/tp"
)

// sumFunc is a tp.Summer from a function of the buffer.
type sumFunc func([]float32) error

func (f sumFunc) AllReduce(_ context.Context, buf []float32, _ allreduce.Op) error { return f(buf) }

// rankOf is the model option placing a model at rank of a group of size
// that sums with sum.
func rankOf(t testing.TB, rank, size int, sum func([]float32) error) model.Option {
	t.Helper()
	g, err := tp.New(rank, size, sumFunc(sum))
	if err != nil {
		t.Fatal(err)
	}
	return model.WithTensorParallel(g)
}

// newRNG is a seeded generator for the test batches.
func newRNG(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream^0x9e3779b97f4a7c15))
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// memGroup is an in-memory sum all-reduce over size ranks running as
// goroutines: the last rank to arrive sums the buffers in rank order
// (0 + x₀ + x₁ + …) and copies the sum to every rank, so all ranks get
// bitwise identical results. It counts calls per rank. abort releases every
// waiting rank with an error (a rank that failed must not hang the others).
type memGroup struct {
	size int

	mu      sync.Mutex
	cond    *sync.Cond
	bufs    [][]float32
	arrived int
	gen     int
	err     error
	calls   []int
}

var errAborted = errors.New("memGroup: aborted by a failed rank")

func newMemGroup(size int) *memGroup {
	g := &memGroup{size: size, bufs: make([][]float32, size), calls: make([]int, size)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *memGroup) allReduce(rank int) func([]float32) error {
	return func(buf []float32) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.err != nil {
			return g.err
		}
		g.calls[rank]++
		gen := g.gen
		g.bufs[rank] = buf
		g.arrived++
		if g.arrived == g.size {
			sum := make([]float32, len(buf))
			for r, b := range g.bufs {
				if len(b) != len(sum) {
					g.err = fmt.Errorf("memGroup: rank %d reduces %d values, rank %d %d", r, len(b), rank, len(buf))
					g.cond.Broadcast()
					return g.err
				}
				for i, x := range b {
					sum[i] += x
				}
			}
			for _, b := range g.bufs {
				copy(b, sum)
			}
			g.arrived = 0
			g.gen++
			g.cond.Broadcast()
			return nil
		}
		for gen == g.gen && g.err == nil {
			g.cond.Wait()
		}
		if gen == g.gen {
			return g.err
		}
		return nil
	}
}

func (g *memGroup) abort() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = errAborted
	}
	g.cond.Broadcast()
}

func (g *memGroup) callsOf(rank int) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[rank]
}

// tpCase is one architecture run with tensor parallelism.
type tpCase struct {
	name  string
	cfg   model.Config
	sizes []int
	batch func(step int) *model.Batch
	// all-reduces per Forward and per Backward
	fwd, bwd int
}

func tpCases() []tpCase {
	gpt := model.Config{Arch: model.ArchGPT, NLayer: 2, NHead: 4, NEmbd: 16, BlockSize: 8, VocabSize: 11, Bias: true}.WithDefaults()
	gptNoBias := gpt
	gptNoBias.Bias = false
	gptNoBias.Activation = model.GELUTanh
	bert := model.Config{Arch: model.ArchBERT, NLayer: 2, NHead: 4, NEmbd: 16, BlockSize: 8, VocabSize: 13, NClasses: 3}.WithDefaults()
	encdec := model.Config{Arch: model.ArchEncDec, NLayer: 1, NDecLayer: 2, NHead: 4, NEmbd: 16, BlockSize: 8, VocabSize: 12}.WithDefaults()

	gptBatch := func(step int) *model.Batch {
		rng := newRNG(int64(100+step), 7)
		b := &model.Batch{B: 3, T: 7, Tokens: make([]int32, 21), Targets: make([]int32, 21)}
		for i := range b.Tokens {
			b.Tokens[i] = int32(rng.IntN(11))
			b.Targets[i] = int32(rng.IntN(11))
		}
		b.Targets[4] = model.IgnoreIndex
		return b
	}
	bertBatch := func(step int) *model.Batch {
		rng := newRNG(int64(200+step), 7)
		const B, T = 3, 8
		b := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T),
			KeyValid: make([]uint8, B*T), TokenTypes: make([]int32, B*T), ClassLabels: []int32{2, 0, 1}}
		for i := range b.Tokens {
			b.Tokens[i] = int32(rng.IntN(13))
			b.Targets[i] = model.IgnoreIndex
			if rng.IntN(3) == 0 {
				b.Targets[i] = int32(rng.IntN(13))
			}
			if i%T < T-1-i/T { // row r has r+1 padded positions at the end
				b.KeyValid[i] = 1
			}
			b.TokenTypes[i] = int32((i % T) / 4)
		}
		return b
	}
	encdecBatch := func(step int) *model.Batch {
		rng := newRNG(int64(300+step), 7)
		const B, S, T = 2, 6, 5
		b := &model.Batch{B: B, S: S, T: T, Src: make([]int32, B*S), SrcValid: make([]uint8, B*S),
			Tokens: make([]int32, B*T), Targets: make([]int32, B*T), KeyValid: make([]uint8, B*T)}
		for i := range b.Src {
			b.Src[i] = int32(rng.IntN(12))
			if i%S < S-i/S { // row 1 has one padded source position
				b.SrcValid[i] = 1
			}
		}
		for i := range b.Tokens {
			b.Tokens[i] = int32(rng.IntN(12))
			b.Targets[i] = int32(rng.IntN(12))
			b.KeyValid[i] = 1
		}
		b.Targets[B*T-1], b.KeyValid[B*T-1] = model.IgnoreIndex, 0
		return b
	}
	return []tpCase{
		{name: "gpt", cfg: gpt, sizes: []int{2, 4}, batch: gptBatch, fwd: 2 * 2, bwd: 2 * 2},
		{name: "gpt_nobias", cfg: gptNoBias, sizes: []int{2}, batch: gptBatch, fwd: 2 * 2, bwd: 2 * 2},
		{name: "bert", cfg: bert, sizes: []int{2, 4}, batch: bertBatch, fwd: 2 * 2, bwd: 2 * 2},
		// encoder blocks 2 each way; decoder blocks 3 (self-attention,
		// cross-attention, MLP); backward 1 more for the encoder memory.
		{name: "encdec", cfg: encdec, sizes: []int{2, 4}, batch: encdecBatch, fwd: 2*1 + 3*2, bwd: 2*1 + 3*2 + 1},
	}
}

const (
	tpSteps = 4
	tpLR    = 1e-3
)

// tpRun is what one model (a whole one or one TP rank) did over tpSteps
// AdamW steps on the case's batches.
type tpRun struct {
	params       *model.Params
	init         []float32   // parameters before training
	losses       []float32   // per step
	grads        [][]float32 // Params.Grad after each step's Backward
	final        []float32   // parameters after tpSteps steps
	fwdN, bwdN   int         // all-reduces in the first Forward and Backward
	hookFailures []string
}

// trainTP builds the model with opts and trains it; calls counts this rank's
// all-reduces (nil: none).
func trainTP(c tpCase, calls func() int, opts ...model.Option) (*tpRun, error) {
	if calls == nil {
		calls = func() int { return 0 }
	}
	m, err := model.New(c.cfg, 42, opts...)
	if err != nil {
		return nil, err
	}
	p := m.Params()
	run := &tpRun{params: p, init: slices.Clone(p.Data)}
	var hook hookRecorder
	m.SetGradHook(hook.record(p))
	opt, err := model.NewAdamW(p, 0.9, 0.95, 0, 0.1)
	if err != nil {
		return nil, err
	}
	for step := 0; step < tpSteps; step++ {
		p.ZeroGrad()
		c0 := calls()
		loss, err := m.Forward(context.Background(), c.batch(step), false)
		if err != nil {
			return nil, fmt.Errorf("step %d forward: %w", step, err)
		}
		c1 := calls()
		hook.reset()
		if err := m.Backward(context.Background()); err != nil {
			return nil, fmt.Errorf("step %d backward: %w", step, err)
		}
		run.hookFailures = append(run.hookFailures, hook.check(p)...)
		if step == 0 {
			run.fwdN, run.bwdN = c1-c0, calls()-c1
		}
		run.losses = append(run.losses, loss)
		run.grads = append(run.grads, slices.Clone(p.Grad))
		opt.Step(p, tpLR)
	}
	run.final = slices.Clone(p.Data)
	return run, nil
}

// hookRecorder checks the gradient hook: it snapshots each reported range
// when it is reported, to compare with the gradients Backward ends with.
type hookRecorder struct {
	ranges [][2]int
	snaps  [][]float32
}

func (h *hookRecorder) record(p *model.Params) func(ctx context.Context, lo, hi int) {
	return func(_ context.Context, lo, hi int) {
		h.ranges = append(h.ranges, [2]int{lo, hi})
		h.snaps = append(h.snaps, slices.Clone(p.Grad[lo:hi]))
	}
}

func (h *hookRecorder) reset() { h.ranges, h.snaps = h.ranges[:0], h.snaps[:0] }

// check returns what is wrong: the ranges must tile [0,len(Grad)) in
// decreasing order, and each must already have held its final values.
func (h *hookRecorder) check(p *model.Params) []string {
	var bad []string
	next := len(p.Grad)
	for i, r := range h.ranges {
		if r[1] != next || r[0] >= r[1] {
			bad = append(bad, fmt.Sprintf("range %d is [%d,%d), want one ending at %d", i, r[0], r[1], next))
		}
		next = r[0]
		if !slices.Equal(h.snaps[i], p.Grad[r[0]:r[1]]) {
			bad = append(bad, fmt.Sprintf("range [%d,%d) changed after it was reported final", r[0], r[1]))
		}
	}
	if next != 0 || len(h.ranges) == 0 {
		bad = append(bad, fmt.Sprintf("ranges %v do not cover [0,%d)", h.ranges, len(p.Grad)))
	}
	return bad
}

// closeTo reports whether got is within tol·max(|want|) of want everywhere
// (relative to the largest entry of the tensor; an all-zero want must be
// matched to 1e-7).
func closeTo(got, want []float32, tol float64) (bool, float64, float64) {
	var scale float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(float64(w)))
	}
	d := maxAbsDiff(got, want)
	return d <= math.Max(tol*scale, 1e-7), d, scale
}

// keyBiasMask is 1 on the attention key-bias entries of a whole tensor v and
// 0 elsewhere: GPT's fused c_attn.bias has them in its middle third.
func keyBiasMask(v model.View) []float32 {
	m := make([]float32, v.Size())
	switch {
	case strings.HasSuffix(v.Name, "attn.c_attn.bias"):
		for i := v.Size() / 3; i < 2*v.Size()/3; i++ {
			m[i] = 1
		}
	case strings.HasSuffix(v.Name, "k_proj.bias"), strings.HasSuffix(v.Name, "attention.key.bias"):
		for i := range m {
			m[i] = 1
		}
	}
	return m
}

// TestKeyBiasGradientIsNoise backs the exclusion in checkTPRuns: the TP=1
// gradient of every key bias is float noise next to the model's gradients.
func TestKeyBiasGradientIsNoise(t *testing.T) {
	for _, c := range tpCases() {
		ref, err := trainTP(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		for s, g := range ref.grads {
			var all, key float64
			for _, v := range ref.params.Views {
				for i, k := range keyBiasMask(v) {
					a := math.Abs(float64(g[v.Offset+i]))
					all = math.Max(all, a)
					if k == 1 {
						key = math.Max(key, a)
					}
				}
			}
			if key > 1e-5*all {
				t.Errorf("%s step %d: key-bias gradient up to %.3g, model gradients up to %.3g: not noise", c.name, s, key, all)
			}
		}
	}
}

func TestTensorParallelMatchesSingleRank(t *testing.T) {
	for _, c := range tpCases() {
		ref, err := trainTP(c, nil)
		if err != nil {
			t.Fatalf("%s: TP=1: %v", c.name, err)
		}
		for _, f := range ref.hookFailures {
			t.Errorf("%s: TP=1 grad hook: %s", c.name, f)
		}
		for _, size := range c.sizes {
			t.Run(fmt.Sprintf("%s/tp%d", c.name, size), func(t *testing.T) {
				runs := runTPGroup(t, c, size)
				checkTPRuns(t, c, ref, runs)
			})
		}
	}
}

// runTPGroup trains size TP ranks of c concurrently.
func runTPGroup(t *testing.T, c tpCase, size int) []*tpRun {
	t.Helper()
	g := newMemGroup(size)
	runs := make([]*tpRun, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := 0; r < size; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[r], errs[r] = trainTP(c, func() int { return g.callsOf(r) }, rankOf(t, r, size, g.allReduce(r)))
			if errs[r] != nil {
				g.abort()
			}
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil && !errors.Is(err, errAborted) {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return runs
}

func checkTPRuns(t *testing.T, c tpCase, ref *tpRun, runs []*tpRun) {
	t.Helper()
	size := len(runs)
	full := ref.params
	for r, run := range runs {
		p := run.params
		for _, f := range run.hookFailures {
			t.Errorf("rank %d grad hook: %s", r, f)
		}
		if run.fwdN != c.fwd || run.bwdN != c.bwd {
			t.Errorf("rank %d: %d all-reduces forward and %d backward, want %d and %d", r, run.fwdN, run.bwdN, c.fwd, c.bwd)
		}
		for s := range run.losses {
			if d := math.Abs(float64(run.losses[s] - ref.losses[s])); d > 1e-5*math.Abs(float64(ref.losses[s])) {
				t.Errorf("rank %d step %d: loss %.7g, TP=1 %.7g", r, s, run.losses[s], ref.losses[s])
			}
		}
		nSharded, localSize := 0, 0
		for _, v := range p.Views {
			fv, ok := full.Lookup(v.Name)
			if !ok || !slices.Equal(fv.Shape, v.FullShape()) {
				t.Fatalf("rank %d: view %q (whole shape %v) not in the TP=1 model", r, v.Name, v.FullShape())
			}
			localSize += v.Size()
			if v.Shard != nil {
				nSharded++
				if v.Shard.Rank != r || v.Shard.Size != size {
					t.Errorf("rank %d: %s has shard %+v", r, v.Name, *v.Shard)
				}
			}
			slice := func(whole []float32) []float32 {
				out := make([]float32, v.Size())
				v.CopyFromFull(out, whole[fv.Offset:fv.End()])
				return out
			}
			// Initialisation: exactly the slice of the TP=1 model.
			if got, want := run.init[v.Offset:v.End()], slice(ref.init); !slices.Equal(got, want) {
				t.Errorf("rank %d: initial %s differs from its slice of the TP=1 model", r, v.Name)
			}
			for s := 0; s < tpSteps; s++ {
				if ok, d, sc := closeTo(run.grads[s][v.Offset:v.End()], slice(ref.grads[s]), 1e-4); !ok {
					t.Errorf("rank %d step %d: grad %s off by %.3g (scale %.3g)", r, s, v.Name, d, sc)
				}
			}
			// After AdamW, except the attention key biases: their gradient is
			// 0 in exact arithmetic and float noise in both runs, which
			// AdamW's normalisation turns into updates of up to lr.
			got, want := run.final[v.Offset:v.End()], slice(ref.final)
			kb := make([]float32, v.Size())
			v.CopyFromFull(kb, keyBiasMask(fv))
			if slices.Contains(kb, 1) {
				got, want = slices.Clone(got), slices.Clone(want)
				for i, k := range kb {
					if k == 1 {
						got[i], want[i] = 0, 0
					}
				}
			}
			if ok, d, sc := closeTo(got, want, 1e-4); !ok {
				t.Errorf("rank %d: %s after %d model.AdamW steps off by %.3g (scale %.3g)", r, v.Name, tpSteps, d, sc)
			}
			// Replicated tensors are bitwise the same on every rank.
			if v.Shard == nil && r > 0 {
				r0 := runs[0]
				for s := 0; s < tpSteps; s++ {
					if !slices.Equal(run.grads[s][v.Offset:v.End()], r0.grads[s][v.Offset:v.End()]) {
						t.Errorf("rank %d step %d: replicated %s has a different gradient than on rank 0", r, s, v.Name)
					}
				}
				if !slices.Equal(run.final[v.Offset:v.End()], r0.final[v.Offset:v.End()]) {
					t.Errorf("rank %d: replicated %s diverged from rank 0", r, v.Name)
				}
			}
		}
		if nSharded == 0 || localSize >= len(full.Data) {
			t.Errorf("rank %d: %d sharded views, %d of %d parameters: nothing was sharded", r, nSharded, localSize, len(full.Data))
		}
	}
	// Gathering every rank's pieces rebuilds each whole tensor, each element once.
	for _, fv := range full.Views {
		whole := make([]float32, fv.Size())
		owners := make([]float32, fv.Size())
		for _, run := range runs {
			v, ok := run.params.Lookup(fv.Name)
			if !ok {
				t.Fatalf("%s missing on a rank", fv.Name)
			}
			v.CopyToFull(whole, run.init[v.Offset:v.End()])
			ones := make([]float32, v.Size())
			for i := range ones {
				ones[i] = 1
			}
			piece := make([]float32, fv.Size())
			v.CopyToFull(piece, ones)
			for i, x := range piece {
				owners[i] += x
			}
			if v.Shard == nil {
				break // replicated: rank 0's copy is the whole tensor
			}
		}
		if !slices.Equal(whole, ref.init[fv.Offset:fv.End()]) {
			t.Errorf("gathered %s differs from the TP=1 tensor", fv.Name)
		}
		for i, n := range owners {
			if n != 1 {
				t.Errorf("%s[%d] is held by %g ranks, want 1", fv.Name, i, n)
				break
			}
		}
	}
}

// TestTensorParallelDropoutKeepsReplicasInSync trains TP ranks with dropout:
// the replicated parameters and the loss must stay identical on every rank.
func TestTensorParallelDropoutKeepsReplicasInSync(t *testing.T) {
	losses, params := dropoutTP(t, 2, 3)
	if !slices.Equal(losses[0], losses[1]) {
		t.Errorf("losses differ across ranks: %v vs %v", losses[0], losses[1])
	}
	for _, v := range params[0].Views {
		if v.Shard == nil && !slices.Equal(params[0].Value(v), params[1].Value(v)) {
			t.Errorf("replicated %s diverged across ranks", v.Name)
		}
	}
}

// dropoutTP trains ranks 0..size-1 of the first case's GPT with dropout 0.2
// (and extra options) for steps AdamW steps, and returns each rank's losses
// and parameters.
func dropoutTP(t *testing.T, size, steps int, extra ...model.Option) ([][]float32, []*model.Params) {
	t.Helper()
	c := tpCases()[0]
	c.cfg.Dropout = 0.2
	g := newMemGroup(size)
	losses := make([][]float32, size)
	params := make([]*model.Params, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range size {
		wg.Go(func() {
			defer func() {
				if errs[r] != nil {
					g.abort()
				}
			}()
			m, err := model.New(c.cfg, 42, append(extra, rankOf(t, r, size, g.allReduce(r)))...)
			if err != nil {
				errs[r] = err
				return
			}
			p := m.Params()
			params[r] = p
			opt, err := model.NewAdamW(p, 0.9, 0.95, 0, 0.1)
			if err != nil {
				errs[r] = err
				return
			}
			for s := range steps {
				p.ZeroGrad()
				loss, err := m.Forward(context.Background(), c.batch(s), true)
				if err != nil {
					errs[r] = err
					return
				}
				if errs[r] = m.Backward(context.Background()); errs[r] != nil {
					return
				}
				losses[r] = append(losses[r], loss)
				opt.Step(p, tpLR)
			}
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return losses, params
}

func TestTensorParallelValidation(t *testing.T) {
	ok := sumFunc(func([]float32) error { return nil })
	// The group itself: size, rank, a collective.
	for _, c := range []struct {
		name       string
		rank, size int
		comm       tp.Summer
		want       string
	}{
		{"size 0", 0, 0, ok, "group size must be ≥ 1"},
		{"negative rank", -1, 2, ok, "rank -1 out of range [0,2)"},
		{"rank = size", 2, 2, ok, "rank 2 out of range [0,2)"},
		{"no all-reduce", 1, 2, nil, "no collective"},
	} {
		_, err := tp.New(c.rank, c.size, c.comm)
		if err == nil || !strings.Contains(err.Error(), "parallel.tp") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a parallel.tp error containing %q", c.name, err, c.want)
		}
	}
	// The model against the group: heads and MLP units must divide.
	gpt := tpCases()[0].cfg // n_head 4, n_hidden 64
	oddHidden := gpt
	oddHidden.NHidden = 66
	cases := []struct {
		name       string
		cfg        model.Config
		rank, size int
		want       string
	}{
		{"heads", gpt, 0, 3, "n_head 4 is not divisible by tp 3"},
		{"mlp width", oddHidden, 0, 4, "n_hidden) 66 is not divisible by tp 4"},
	}
	for _, c := range cases {
		for _, arch := range []model.Arch{model.ArchGPT, model.ArchBERT, model.ArchEncDec} {
			cfg := c.cfg
			cfg.Arch = arch
			cfg = cfg.WithDefaults()
			_, err := model.New(cfg, 1, rankOf(t, c.rank, c.size, ok))
			if err == nil || !strings.Contains(err.Error(), "parallel.tp") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s/%s: got %v, want a parallel.tp error containing %q", c.name, arch, err, c.want)
			}
		}
	}
	// TP=1 with no all-reduce is the plain model.
	g, err := tp.New(0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.New(gpt, 1, model.WithTensorParallel(g)); err != nil {
		t.Errorf("tp 1: %v", err)
	}
}

// TestTensorParallelAllReduceErrors: a failing collective fails Forward and
// Backward with an error that wraps it.
func TestTensorParallelAllReduceErrors(t *testing.T) {
	boom := errors.New("link down")
	for _, c := range tpCases() {
		if c.name == "gpt_nobias" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			// A lone rank of 2 whose "peer" mirrors it: the all-reduce doubles.
			failAfter := -1
			calls := 0
			ar := func(buf []float32) error {
				calls++
				if failAfter >= 0 && calls > failAfter {
					return boom
				}
				for i := range buf {
					buf[i] *= 2
				}
				return nil
			}
			m, err := model.New(c.cfg, 1, rankOf(t, 1, 2, ar))
			if err != nil {
				t.Fatal(err)
			}
			failAfter = 0
			if _, err := m.Forward(context.Background(), c.batch(0), false); !errors.Is(err, boom) {
				t.Fatalf("Forward: got %v, want it to wrap %v", err, boom)
			}
			failAfter = -1
			if _, err := m.Forward(context.Background(), c.batch(0), false); err != nil {
				t.Fatal(err)
			}
			calls, failAfter = 0, 1
			if err := m.Backward(context.Background()); !errors.Is(err, boom) || !strings.Contains(err.Error(), "rank 1 of 2") {
				t.Fatalf("Backward: got %v, want it to wrap %v", err, boom)
			}
		})
	}
}
