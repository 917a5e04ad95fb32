package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
)

// GPT is nanoGPT's model: learned token and position embeddings, pre-LN
// blocks x + attn(ln_1(x)), x + mlp(ln_2(x)) with causal self-attention
// (fused c_attn, c_proj) and MLP (c_fc, activation, c_proj), final ln_f and
// an lm_head tied to wte. Parameter names are nanoGPT's state_dict names.
type GPT struct {
	cfg    Config
	params *Params
	wte    Embedding
	wpe    Embedding
	blocks []gptBlock
	lnf    LayerNorm
	lmHead Linear // W is wte's view: tied
	drop   Dropout
	ce     CrossEntropy
	rng    *rand.Rand
	rngSrc *rand.PCG // rng's source (state saved for recomputation)

	recompute Recompute  // what Backward recomputes (WithRecompute)
	rewind    []rngState // RecomputeBlock: the generators before each block's Forward, and after the last

	ex      exec            // worker pool and kernel choice of the layers
	cleanup runtime.Cleanup // stops ex.pool when the GPT is garbage
	tp      tpGroup         // tensor-parallel shard (Size 1: the whole model)
	marks   gradMarks       // SetGradHook

	acts gptActs
	// last Forward
	B, T       int
	train      bool
	hasTargets bool
	ok         bool
	denom      float32
}

type gptBlock struct {
	ln1, ln2    LayerNorm
	cAttn, proj Linear
	attn        Attention
	fc, fcProj  Linear
	act         Activation
}

// gptLayerActs are one block's saved activations; N = B·T.
type gptLayerActs struct {
	ln1, ln1Mean, ln1Rstd []float32 // (N,C), (N), (N)
	qkv                   []float32 // (N,3C)
	att, attMask          []float32 // (B,NH,T,T)
	atty                  []float32 // (N,C) attention output before c_proj
	proj, projMask        []float32 // (N,C) c_proj output after dropout, dropout mask
	res1                  []float32 // (N,C) x + attn
	ln2, ln2Mean, ln2Rstd []float32
	fch, fchAct           []float32 // (N,H) c_fc output, activation; fch holds act'(c_fc) after Forward when ex.keepsActGrad
	fcProj, fcProjMask    []float32 // (N,C)
	res2                  []float32 // (N,C) block output
}

type gptActs struct {
	capN, capNTT int
	tokens       []int32        // (N)
	targets      []int32        // (N)
	x0, x0Mask   []float32      // (N,C) embeddings after dropout
	layers       []gptLayerActs // one per block; with RecomputeBlock one, reused by every block
	blockOut     [][]float32    // RecomputeBlock: (N,C) output of each block, the next one's input
	lnf, lnfMean []float32
	lnfRstd      []float32
	logits       []float32 // (N,V)
	probs        []float32 // (N,V)
	// backward scratch
	dx, dtmp, dln, datty []float32 // (N,C)
	dqkv                 []float32 // (N,3C)
	dfch, dfchAct        []float32 // (N,H)
	dlogits              []float32 // (N,V)
	attScratch           []float32 // Attention.ScratchSize(T,T)
}

// NewGPT builds a GPT with nanoGPT's initialisation drawn from seed:
// N(0,0.02) for embeddings and Linear weights, N(0,0.02/√(2·n_layer)) for
// every c_proj.weight, zero biases, LayerNorm 1/0. cfg must have defaults
// filled and a vocabulary size (New does both). WithTensorParallel builds one
// rank's shard, initialised as the slices of the whole model.
func NewGPT(cfg Config, seed int64, opts ...Option) (*GPT, error) {
	cfg, err := buildable(cfg, ArchGPT)
	if err != nil {
		return nil, err
	}
	return newGPT(cfg, seed, opts...)
}

// newGPT is NewGPT for a config buildable has checked.
func newGPT(cfg Config, seed int64, opts ...Option) (*GPT, error) {
	o := applyOptions(opts)
	tp, err := newTPGroup(cfg, seed, o.tp)
	if err != nil {
		return nil, err
	}
	C, H, V := cfg.NEmbd, cfg.NHidden, cfg.VocabSize
	g := &GPT{cfg: cfg, drop: Dropout{P: float32(cfg.Dropout)}, ce: CrossEntropy{V: V}, tp: tp, recompute: o.recompute}
	g.rng, g.rngSrc = newRNGSource(seed, 1)
	var b Builder
	g.wte = NewEmbedding(&b, "transformer.wte", V, C)
	g.wpe = NewEmbedding(&b, "transformer.wpe", cfg.BlockSize, C)
	for i := 0; i < cfg.NLayer; i++ {
		pre := fmt.Sprintf("transformer.h.%d.", i)
		var blk gptBlock
		blk.ln1 = NewLayerNorm(&b, pre+"ln_1", C, cfg.LayerNormEps, cfg.Bias)
		blk.cAttn = tp.Column(&b, pre+"attn.c_attn", C, 3*C, 3, cfg.Bias)
		blk.proj = tp.Row(&b, pre+"attn.c_proj", C, C, cfg.Bias)
		blk.ln2 = NewLayerNorm(&b, pre+"ln_2", C, cfg.LayerNormEps, cfg.Bias)
		blk.fc = tp.Column(&b, pre+"mlp.c_fc", C, H, 1, cfg.Bias)
		blk.fcProj = tp.Row(&b, pre+"mlp.c_proj", H, C, cfg.Bias)
		blk.attn = Attention{NHead: tp.part(cfg.NHead), HeadSize: C / cfg.NHead, Causal: true, Dropout: g.drop}
		blk.act = cfg.Activation
		g.blocks = append(g.blocks, blk)
	}
	g.lnf = NewLayerNorm(&b, "transformer.ln_f", C, cfg.LayerNormEps, cfg.Bias)
	b.Alias("lm_head.weight", "transformer.wte.weight")
	g.lmHead = Linear{W: g.wte.W, In: C, Out: V}
	p, err := b.Build()
	if err != nil {
		return nil, err
	}
	p.gemm = o.compute.GEMM
	g.params = p
	g.ex.threads = o.compute.Threads
	if tp.active() {
		return g, initFromWhole(p, newGPT, cfg, seed)
	}
	g.init(newRNG(seed, 0))
	return g, nil
}

func (g *GPT) init(rng *rand.Rand) {
	p := g.params
	const std = 0.02
	projStd := std / math.Sqrt(2*float64(g.cfg.NLayer))
	p.initNormal(g.wte.W, std, rng)
	p.initNormal(g.wpe.W, std, rng)
	lin := func(l Linear, s float64) {
		p.initNormal(l.W, s, rng)
		if l.B.Present() {
			p.initConst(l.B, 0)
		}
	}
	for i := range g.blocks {
		blk := &g.blocks[i]
		blk.ln1.InitParams(p)
		lin(blk.cAttn, std)
		lin(blk.proj, projStd)
		blk.ln2.InitParams(p)
		lin(blk.fc, std)
		lin(blk.fcProj, projStd)
	}
	g.lnf.InitParams(p)
}

// Config returns the model's config (defaults filled).
func (g *GPT) Config() Config { return g.cfg }

// Params returns the flat parameter buffer and its manifest.
func (g *GPT) Params() *Params { return g.params }

// Logits of the last Forward, (B,T,V).
func (g *GPT) Logits() []float32 { return g.acts.logits[:g.B*g.T*g.cfg.VocabSize] }

// Recompute is what g's Backward recomputes (WithRecompute).
func (g *GPT) Recompute() Recompute { return g.recompute }

// SetGradHook implements Model: ranges are ln_f, each block from the last,
// then the embeddings (wte is also lm_head, so it is final only at the end).
func (g *GPT) SetGradHook(fn func(ctx context.Context, lo, hi int)) { g.marks.fn = fn }

// ensure sizes the activation buffers for B rows of T tokens.
func (g *GPT) ensure(B, T int) {
	N, NTT := B*T, B*T*T
	a := &g.acts
	if N <= a.capN && NTT <= a.capNTT {
		return
	}
	N, NTT = max(N, a.capN), max(NTT, a.capNTT)
	C, H, V, NH := g.cfg.NEmbd, g.cfg.NHidden, g.cfg.VocabSize, g.cfg.NHead
	Cl, H, NH := g.tp.part(C), g.tp.part(H), g.tp.part(NH) // this rank's heads and hidden units
	drop := g.drop.P > 0
	f := func(n int) []float32 { return make([]float32, n) }
	maybe := func(n int) []float32 {
		if drop {
			return f(n)
		}
		return nil
	}
	a.capN, a.capNTT = N, NTT
	a.tokens, a.targets = make([]int32, N), make([]int32, N)
	a.x0, a.x0Mask = f(N*C), maybe(N*C)
	kept := len(g.blocks)
	if g.recompute == RecomputeBlock {
		kept = min(kept, 1)
		a.blockOut = make([][]float32, len(g.blocks))
		for i := range a.blockOut {
			a.blockOut[i] = f(N * C)
		}
		g.rewind = make([]rngState, len(g.blocks)+1)
	}
	var mlpFch, mlpAct []float32 // RecomputeMLP: every block's c_fc output and activation, recomputed
	if g.recompute == RecomputeMLP {
		mlpFch, mlpAct = f(N*H), f(N*H)
	}
	a.layers = make([]gptLayerActs, kept)
	for i := range a.layers {
		a.layers[i] = gptLayerActs{
			ln1: f(N * C), ln1Mean: f(N), ln1Rstd: f(N),
			qkv: f(N * 3 * Cl), att: f(NTT * NH), attMask: maybe(NTT * NH),
			atty: f(N * Cl), proj: f(N * C), projMask: maybe(N * C), res1: f(N * C),
			ln2: f(N * C), ln2Mean: f(N), ln2Rstd: f(N),
			fch: mlpFch, fchAct: mlpAct, fcProj: f(N * C), fcProjMask: maybe(N * C), res2: f(N * C),
		}
		if mlpFch == nil {
			a.layers[i].fch, a.layers[i].fchAct = f(N*H), f(N*H)
		}
	}
	a.lnf, a.lnfMean, a.lnfRstd = f(N*C), f(N), f(N)
	a.logits, a.probs, a.dlogits = f(N*V), f(N*V), f(N*V)
	a.dx, a.dtmp, a.dln, a.datty = f(N*C), f(N*C), f(N*C), f(N*Cl)
	a.dqkv = f(N * 3 * Cl)
	a.dfch, a.dfchAct = f(N*H), f(N*H)
	a.attScratch = f((&Attention{HeadSize: C / g.cfg.NHead}).ScratchSize(g.cfg.BlockSize, g.cfg.BlockSize))
}

// Forward implements Model. Targets may be nil (inference: loss 0, no Backward).
func (g *GPT) Forward(ctx context.Context, b *Batch, train bool) (float32, error) {
	g.ok = false
	if err := validateShape(b, g.cfg.BlockSize); err != nil {
		return 0, err
	}
	V := g.cfg.VocabSize
	if err := ValidateIDs("Tokens", b.Tokens, b.B, b.T, V, false); err != nil {
		return 0, err
	}
	if b.Targets != nil {
		if err := ValidateIDs("Targets", b.Targets, b.B, b.T, V, true); err != nil {
			return 0, err
		}
	}
	if b.KeyValid != nil || b.TokenTypes != nil || b.Src != nil || b.SrcValid != nil || b.ClassLabels != nil {
		return 0, fmt.Errorf("batch: GPT uses only Tokens and Targets; KeyValid, TokenTypes, Src, SrcValid and ClassLabels must be nil")
	}
	B, T := b.B, b.T
	g.ensure(B, T)
	g.B, g.T, g.train, g.hasTargets = B, T, train, b.Targets != nil
	N := B * T
	a := &g.acts
	copy(a.tokens, b.Tokens)
	if err := g.forward(ctx, N, train); err != nil {
		return 0, err
	}
	loss := float32(0)
	if g.hasTargets {
		copy(a.targets, b.Targets)
		loss, g.denom = g.ce.Forward(a.probs[:N*V], a.logits[:N*V], a.targets[:N], N, b.LossDenom)
	}
	g.ok = true
	return loss, nil
}

// forward runs embeddings, blocks, ln_f and lm_head on acts.tokens[:N].
// It fails only on a tensor-parallel all-reduce.
func (g *GPT) forward(ctx context.Context, N int, train bool) error {
	p, a := g.params, &g.acts
	B, T := g.B, g.T
	C := g.cfg.NEmbd
	x := a.x0[:N*C]
	g.wte.Forward(p, x, a.tokens[:N])
	g.wpe.ForwardPositions(p, x, B, T)
	g.drop.Forward(g.rng, x, a.x0Mask, x, train)
	for l := range g.blocks {
		la := g.layerActs(l)
		if g.recompute == RecomputeBlock {
			g.rewind[l] = g.saveRNG()
		}
		if err := g.blockForward(ctx, l, la, x, N, train); err != nil {
			return err
		}
		x = la.res2[:N*C]
	}
	if g.recompute == RecomputeBlock {
		g.rewind[len(g.blocks)] = g.saveRNG()
	}
	g.lnf.forward(g.exe(), p, a.lnf, a.lnfMean, a.lnfRstd, x, N)
	g.lmHead.Forward(p, a.logits, a.lnf, N)
	return nil
}

// layerActs is where block l's activations live: its own, or with
// RecomputeBlock the shared work space with block l's output slot.
func (g *GPT) layerActs(l int) *gptLayerActs {
	a := &g.acts
	if g.recompute != RecomputeBlock {
		return &a.layers[l]
	}
	la := &a.layers[0]
	la.res2 = a.blockOut[l]
	return la
}

// blockInput is the input of block l: the embeddings or block l−1's output.
func (g *GPT) blockInput(l, N int) []float32 {
	a := &g.acts
	switch {
	case l == 0:
		return a.x0[:N*g.cfg.NEmbd]
	case g.recompute == RecomputeBlock:
		return a.blockOut[l-1][:N*g.cfg.NEmbd]
	}
	return a.layers[l-1].res2[:N*g.cfg.NEmbd]
}

// saveRNG and restoreRNG rewind the dropout generators (the shared one and
// a TP rank's attention one) for a recomputed forward.
func (g *GPT) saveRNG() rngState {
	s := rngState{shared: *g.rngSrc}
	if g.tp.rngSrc != nil {
		s.attn = *g.tp.rngSrc
	}
	return s
}

func (g *GPT) restoreRNG(s rngState) {
	*g.rngSrc = s.shared
	if g.tp.rngSrc != nil {
		*g.tp.rngSrc = s.attn
	}
}

// blockForward runs block l on x (N,C) into la; la.res2 is its output.
func (g *GPT) blockForward(ctx context.Context, l int, la *gptLayerActs, x []float32, N int, train bool) error {
	p := g.params
	C, H := g.cfg.NEmbd, g.tp.part(g.cfg.NHidden)
	blk := &g.blocks[l]
	blk.ln1.forward(g.exe(), p, la.ln1, la.ln1Mean, la.ln1Rstd, x, N)
	blk.cAttn.Forward(p, la.qkv, la.ln1, N)
	blk.attn.forward(g.exe(), g.tp.attnRNG(g.rng), g.attnArgs(la), train)
	if err := g.tp.rowForward(ctx, p, &blk.proj, la.proj, la.atty, N); err != nil {
		return err
	}
	g.drop.Forward(g.rng, la.proj[:N*C], la.projMask, la.proj[:N*C], train)
	ResidualForward(la.res1[:N*C], x, la.proj)
	blk.ln2.forward(g.exe(), p, la.ln2, la.ln2Mean, la.ln2Rstd, la.res1, N)
	blk.fc.Forward(p, la.fch, la.ln2, N)
	g.exe().actForwardKeep(blk.act, la.fchAct[:N*H], la.fch[:N*H]) // fch may now hold act'(fch)
	if err := g.tp.rowForward(ctx, p, &blk.fcProj, la.fcProj, la.fchAct, N); err != nil {
		return err
	}
	g.drop.Forward(g.rng, la.fcProj[:N*C], la.fcProjMask, la.fcProj[:N*C], train)
	ResidualForward(la.res2[:N*C], la.res1, la.fcProj)
	return nil
}

func (g *GPT) attnArgs(la *gptLayerActs) AttnArgs {
	C, T := g.tp.part(g.cfg.NEmbd), g.T // this rank's heads
	return AttnArgs{
		B: g.B, T: T, S: T,
		Q: la.qkv, LDQ: 3 * C,
		K: la.qkv[C:], V: la.qkv[2*C:], LDKV: 3 * C,
		Out: la.atty, LDO: C,
		Att: la.att, Mask: la.attMask, Scratch: g.acts.attScratch,
		GEMM: g.params.gemm,
	}
}

// Backward implements Model.
func (g *GPT) Backward(ctx context.Context) error {
	if !g.ok || !g.hasTargets {
		panic("model: GPT.Backward needs a successful Forward with targets first")
	}
	p, a := g.params, &g.acts
	B, T, train := g.B, g.T, g.train
	N := B * T
	C, H, V := g.cfg.NEmbd, g.tp.part(g.cfg.NHidden), g.cfg.VocabSize
	Cl := g.tp.part(C) // this rank's heads
	g.marks.begin(len(p.Grad))
	dlogits := a.dlogits[:N*V]
	clear(dlogits)
	g.ce.Backward(dlogits, a.probs, a.targets, N, g.denom, 1)
	dln := a.dln[:N*C]
	g.lmHead.backward(p, dln, dlogits, a.lnf, N, 0)
	dx := a.dx[:N*C]
	clear(dx)
	xL := g.blockInput(len(g.blocks), N)
	g.lnf.backward(g.exe(), p, dx, dln, xL, a.lnfMean, a.lnfRstd, N)
	g.marks.finalFrom(ctx, g.lnf.W.Offset)
	dtmp, datty, dqkv := a.dtmp[:N*C], a.datty[:N*Cl], a.dqkv[:N*3*Cl]
	dfch, dfchAct := a.dfch[:N*H], a.dfchAct[:N*H]
	for l := len(g.blocks) - 1; l >= 0; l-- {
		blk, la := &g.blocks[l], g.layerActs(l)
		xin := g.blockInput(l, N)
		switch g.recompute {
		case RecomputeBlock: // the same draws and kernels as Forward: the same bits
			g.restoreRNG(g.rewind[l])
			if err := g.blockForward(ctx, l, la, xin, N, train); err != nil {
				return err
			}
		case RecomputeMLP:
			blk.fc.Forward(p, la.fch, la.ln2, N)
			g.exe().actForwardKeep(blk.act, la.fchAct[:N*H], la.fch[:N*H])
		}
		// res2 = res1 + drop(fcProj): dx flows to res1 unchanged.
		// (The products below overwrite their input gradients: beta 0.)
		g.tp.rowBackward(p, &blk.fcProj, dfchAct, g.dropGrad(dtmp, dx, la.fcProjMask, train), la.fchAct, N, 0)
		g.exe().actBackwardKept(blk.act, dfch, dfchAct, la.fch[:N*H])
		blk.fc.backward(p, dln, dfch, la.ln2, N, 0)
		if err := g.tp.reduce(ctx, dln); err != nil {
			return err
		}
		blk.ln2.backward(g.exe(), p, dx, dln, la.res1, la.ln2Mean, la.ln2Rstd, N)
		// res1 = xin + drop(proj)
		g.tp.rowBackward(p, &blk.proj, datty, g.dropGrad(dtmp, dx, la.projMask, train), la.atty, N, 0)
		blk.attn.backward(g.exe(), g.attnArgs(la), AttnGrads{DQ: dqkv, DK: dqkv[Cl:], DV: dqkv[2*Cl:], DOut: datty, Set: true}, train)
		blk.cAttn.backward(p, dln, dqkv, la.ln1, N, 0)
		if err := g.tp.reduce(ctx, dln); err != nil {
			return err
		}
		blk.ln1.backward(g.exe(), p, dx, dln, xin, la.ln1Mean, la.ln1Rstd, N)
		g.marks.finalFrom(ctx, blk.ln1.W.Offset)
	}
	if g.recompute == RecomputeBlock {
		g.restoreRNG(g.rewind[len(g.blocks)]) // as Forward left them
	}
	demb := g.dropGrad(dtmp, dx, a.x0Mask, train)
	g.wte.Backward(p, demb, a.tokens[:N])
	g.wpe.BackwardPositions(p, demb, B, T)
	g.marks.finalFrom(ctx, 0)
	return nil
}

// dropGrad is the gradient before a dropout whose output gradient is dx:
// dx itself when the dropout is off (no copy), else dx ⊙ mask in tmp. The
// result is only read, and before dx changes.
func (g *GPT) dropGrad(tmp, dx, mask []float32, train bool) []float32 {
	if !g.drop.Active(train) {
		return dx
	}
	clear(tmp)
	g.drop.Backward(tmp, dx, mask, train)
	return tmp
}

// Generate appends n tokens to prompt, sampling each from the last position's
// logits divided by temperature, restricted to the topK most likely tokens
// (topK ≤ 0: all), with rng (nanoGPT generate). temperature ≤ 0 picks the
// argmax. The context is cropped to the last block_size tokens. It returns
// prompt followed by the n new tokens.
func (g *GPT) Generate(ctx context.Context, prompt []int32, n int, temperature float64, topK int, rng *rand.Rand) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: prompt is empty; give at least one token")
	}
	V := g.cfg.VocabSize
	seq := append(make([]int32, 0, len(prompt)+n), prompt...)
	probs := make([]float64, V)
	idx := make([]int, V)
	for i := 0; i < n; i++ {
		window := seq[max(0, len(seq)-g.cfg.BlockSize):]
		if _, err := g.Forward(ctx, &Batch{B: 1, T: len(window), Tokens: window}, false); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		last := g.acts.logits[(len(window)-1)*V : len(window)*V]
		if temperature <= 0 {
			seq = append(seq, int32(argmax(last)))
			continue
		}
		mx := math.Inf(-1)
		for j, l := range last {
			probs[j] = float64(l) / temperature
			mx = math.Max(mx, probs[j])
		}
		if topK > 0 && topK < V {
			for j := range idx {
				idx[j] = j
			}
			sort.Slice(idx, func(x, y int) bool { return probs[idx[x]] > probs[idx[y]] })
			kth := probs[idx[topK-1]]
			for j := range probs {
				if probs[j] < kth {
					probs[j] = math.Inf(-1)
				}
			}
		}
		var z float64
		for j := range probs {
			probs[j] = math.Exp(probs[j] - mx)
			z += probs[j]
		}
		u, next := rng.Float64()*z, V-1
		for j, pj := range probs {
			if u < pj {
				next = j
				break
			}
			u -= pj
		}
		seq = append(seq, int32(next))
	}
	return seq, nil
}

// Greedy decodes rows prompts at once: prompts is (rows,P); it appends n
// argmax tokens to each row (context cropped to block_size) and returns the
// (rows,n) generated tokens. Used to score the sort and add tasks.
func (g *GPT) Greedy(ctx context.Context, prompts []int32, rows, n int) ([]int32, error) {
	if rows < 1 || len(prompts) == 0 || len(prompts)%rows != 0 {
		return nil, fmt.Errorf("greedy: prompts has %d tokens, want rows (%d) × prompt length", len(prompts), rows)
	}
	P, V := len(prompts)/rows, g.cfg.VocabSize
	seq := make([]int32, rows*(P+n))
	for r := 0; r < rows; r++ {
		copy(seq[r*(P+n):], prompts[r*P:(r+1)*P])
	}
	window := make([]int32, rows*min(P+n, g.cfg.BlockSize))
	out := make([]int32, rows*n)
	for i := 0; i < n; i++ {
		L := P + i
		lo := max(0, L-g.cfg.BlockSize)
		T := L - lo
		for r := 0; r < rows; r++ {
			copy(window[r*T:(r+1)*T], seq[r*(P+n)+lo:r*(P+n)+L])
		}
		if _, err := g.Forward(ctx, &Batch{B: rows, T: T, Tokens: window[:rows*T]}, false); err != nil {
			return nil, fmt.Errorf("greedy: %w", err)
		}
		for r := 0; r < rows; r++ {
			tok := int32(argmax(g.acts.logits[(r*T+T-1)*V : (r*T+T)*V]))
			seq[r*(P+n)+L] = tok
			out[r*n+i] = tok
		}
	}
	return out, nil
}

// argmax returns the index of the largest value (the first on ties).
func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
