package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// EncDec is the 2017 encoder–decoder Transformer (Vaswani et al.), as in
// bench/torch/seq2seq_reverse.py:
//
//	enc x = Dropout(src_emb[src]·√C + PE)
//	        x = LN(x + Dropout(SelfAttn(x)))        key padding: SrcValid
//	        x = LN(x + Dropout(FFN(x)))              FFN = fc2(ReLU(fc1(x)))
//	dec y = Dropout(tgt_emb[tokens]·√C + PE)
//	        y = LN(y + Dropout(SelfAttn(y)))        causal + key padding: KeyValid
//	        y = LN(y + Dropout(CrossAttn(y, mem)))   key padding: SrcValid
//	        y = LN(y + Dropout(FFN(y)))
//	logits = y · tgt_embᵀ                            tied, no bias, no final LayerNorm
//
// Attention has separate q/k/v/out projections with biases. The loss is the
// cross-entropy over the decoder Targets that are not IgnoreIndex
// (Batch.LossDenom semantics); Logits is (B,T,V).
type EncDec struct {
	cfg    Config
	params *Params
	rng    *rand.Rand // dropout masks

	srcEmb, tgtEmb Embedding
	pe             []float32 // (BlockSize,C) sinusoidal table, not a parameter
	enc            []encLayer
	dec            []decLayer
	proj           Linear // W is tgtEmb.W (tied), no bias
	drop           Dropout
	tp             tpGroup   // tensor-parallel shard (Size 1: the whole model)
	marks          gradMarks // SetGradHook

	s encDecState
}

var _ Model = (*EncDec)(nil)

type encLayer struct {
	self attnSub
	ffn  ffnSub
}

type decLayer struct {
	self, cross attnSub
	ffn         ffnSub
}

type encLayerActs struct {
	self attnActs
	ffn  ffnActs
}

type decLayerActs struct {
	self, cross attnActs
	ffn         ffnActs
}

// encDecState holds the activations of the last Forward and the backward
// scratch; buffers grow only when a batch is larger than any before.
type encDecState struct {
	B, S, T int
	train   bool
	ready   bool

	src, tokens, targets []int32 // (B·S), (B·T), (B·T)
	srcValid, keyValid   []uint8 // read-only references into the batch (nil: all real)

	e0, e0Mask []float32 // (B·S,C) encoder input after dropout, its mask
	d0, d0Mask []float32 // (B·T,C)
	enc        []encLayerActs
	dec        []decLayerActs
	logits     []float32 // (B·T,V)
	probs      []float32 // (B·T,V)
	denom      float32
	attScratch []float32 // Attention.ScratchSize(L,L), L = max(S,T)

	// backward scratch
	dA, dB, dr, dq, dy []float32 // (max(B·S,B·T),C)
	dk, dv             []float32 // (max(B·S,B·T),C)
	dmem, dE           []float32 // (B·S,C) d loss / d encoder output, ping-pong partner
	dpre, dact         []float32 // (max rows,H)
	dlogits            []float32 // (B·T,V)

	// greedy decoding
	ys   []int32 // (B,maxLen) prefixes, row stride maxLen
	done []int32 // (B) 1 once a row has produced EOS
}

// NewEncDec builds an encoder–decoder for cfg (defaults filled in) with
// parameters initialised as seq2seq_reverse.py does: src_emb and tgt_emb from
// normal(0, 1/C), every other matrix Xavier-uniform, biases 0, LayerNorm 1/0.
// seed fixes the initialisation and the dropout masks. WithTensorParallel
// builds one rank's shard, initialised as the slices of the whole model.
func NewEncDec(cfg Config, seed int64, opts ...Option) (*EncDec, error) {
	cfg, err := buildable(cfg, ArchEncDec)
	if err != nil {
		return nil, err
	}
	return newEncDec(cfg, seed, opts...)
}

// newEncDec is NewEncDec for a config buildable has checked.
func newEncDec(cfg Config, seed int64, opts ...Option) (*EncDec, error) {
	o := applyOptions(opts)
	if o.recompute != RecomputeNone {
		return nil, fmt.Errorf("train.recompute: %s is implemented for model.arch gpt; use none for encdec", o.recompute)
	}
	tp, err := newTPGroup(cfg, seed, o.tp)
	if err != nil {
		return nil, err
	}
	C, H, V := cfg.NEmbd, cfg.NHidden, cfg.VocabSize
	eps := cfg.LayerNormEps
	m := &EncDec{cfg: cfg, rng: newRNG(seed, 1), drop: Dropout{P: float32(cfg.Dropout)}, tp: tp}
	m.pe = SinusoidalTable(cfg.BlockSize, C)

	var b Builder
	newAttn := func(prefix, ln string, causal bool) attnSub {
		return attnSub{
			q:    tp.Column(&b, prefix+".q_proj", C, C, 1, true),
			k:    tp.Column(&b, prefix+".k_proj", C, C, 1, true),
			v:    tp.Column(&b, prefix+".v_proj", C, C, 1, true),
			out:  tp.Row(&b, prefix+".out_proj", C, C, true),
			attn: Attention{NHead: tp.part(cfg.NHead), HeadSize: C / cfg.NHead, Causal: causal, Dropout: m.drop},
			ln:   NewLayerNorm(&b, ln, C, eps, true),
		}
	}
	newFFN := func(prefix, ln string) ffnSub {
		return ffnSub{
			fc1: tp.Column(&b, prefix+".fc1", C, H, 1, true),
			fc2: tp.Row(&b, prefix+".fc2", H, C, true),
			ln:  NewLayerNorm(&b, ln, C, eps, true),
		}
	}
	m.srcEmb = NewEmbedding(&b, "src_emb", V, C)
	m.tgtEmb = NewEmbedding(&b, "tgt_emb", V, C)
	m.proj = Linear{W: m.tgtEmb.W, In: C, Out: V}
	m.enc = make([]encLayer, cfg.NLayer)
	for i := range m.enc {
		p := fmt.Sprintf("encoder.%d.", i)
		m.enc[i].self = newAttn(p+"self_attn", p+"ln1", false)
		m.enc[i].ffn = newFFN(p+"ffn", p+"ln2")
	}
	m.dec = make([]decLayer, cfg.NDecLayer)
	for i := range m.dec {
		p := fmt.Sprintf("decoder.%d.", i)
		m.dec[i].self = newAttn(p+"self_attn", p+"ln1", true)
		m.dec[i].cross = newAttn(p+"cross_attn", p+"ln2", false)
		m.dec[i].ffn = newFFN(p+"ffn", p+"ln3")
	}
	params, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("encdec: laying out parameters: %w", err)
	}
	params.gemm = o.compute.GEMM
	m.params = params
	if tp.active() {
		return m, initFromWhole(params, newEncDec, cfg, seed)
	}

	// Initialisation (biases are already 0 from Build).
	rng := newRNG(seed, 0)
	params.initNormal(m.srcEmb.W, 1/math.Sqrt(float64(C)), rng)
	params.initNormal(m.tgtEmb.W, 1/math.Sqrt(float64(C)), rng)
	initAttn := func(a *attnSub) {
		for _, l := range []Linear{a.q, a.k, a.v, a.out} {
			fillXavierUniform(params.Value(l.W), l.In, l.Out, rng)
		}
		a.ln.InitParams(params)
	}
	initFFN := func(f *ffnSub) {
		fillXavierUniform(params.Value(f.fc1.W), f.fc1.In, f.fc1.Out, rng)
		fillXavierUniform(params.Value(f.fc2.W), f.fc2.In, f.fc2.Out, rng)
		f.ln.InitParams(params)
	}
	for i := range m.enc {
		initAttn(&m.enc[i].self)
		initFFN(&m.enc[i].ffn)
	}
	for i := range m.dec {
		initAttn(&m.dec[i].self)
		initAttn(&m.dec[i].cross)
		initFFN(&m.dec[i].ffn)
	}
	return m, nil
}

// fillXavierUniform fills a (fanOut,fanIn) matrix d from U(-a, a), a =
// √(6/(fanIn+fanOut)) (torch.nn.init.xavier_uniform_).
func fillXavierUniform(d []float32, fanIn, fanOut int, rng *rand.Rand) {
	a := math.Sqrt(6 / float64(fanIn+fanOut))
	for i := range d {
		d[i] = float32((2*rng.Float64() - 1) * a)
	}
}

// Config returns the model's configuration, defaults filled in.
func (m *EncDec) Config() Config { return m.cfg }

// Params returns the flat parameter buffer and its manifest.
func (m *EncDec) Params() *Params { return m.params }

// Close does nothing: an EncDec runs its layers on the calling goroutine.
func (m *EncDec) Close() {}

// SetGradHook implements Model: ranges are each decoder layer from the last,
// each encoder layer from the last, then both embeddings (tgt_emb is also
// the output projection and lies next to src_emb, so it is reported last).
func (m *EncDec) SetGradHook(fn func(ctx context.Context, lo, hi int)) { m.marks.fn = fn }

// Logits returns the decoder logits of the last Forward, (B,T,V). The slice
// is reused by the next Forward or GreedyDecode.
func (m *EncDec) Logits() []float32 { return m.s.logits[:m.s.B*m.s.T*m.cfg.VocabSize] }

// validate checks b against the model before anything is written.
func (m *EncDec) validate(b *Batch) error {
	if err := validateShape(b, m.cfg.BlockSize); err != nil {
		return err
	}
	if b.S < 1 || b.S > m.cfg.BlockSize {
		return fmt.Errorf("batch.S: source length %d out of range [1,%d] (block_size)", b.S, m.cfg.BlockSize)
	}
	V := m.cfg.VocabSize
	if err := ValidateIDs("Src", b.Src, b.B, b.S, V, false); err != nil {
		return err
	}
	if err := ValidateMask("SrcValid", b.SrcValid, b.B, b.S); err != nil {
		return err
	}
	if err := ValidateIDs("Tokens", b.Tokens, b.B, b.T, V, false); err != nil {
		return fmt.Errorf("%w (encdec: the decoder input, [BOS] + target)", err)
	}
	if b.Targets != nil {
		if err := ValidateIDs("Targets", b.Targets, b.B, b.T, V, true); err != nil {
			return err
		}
	}
	if err := ValidateMask("KeyValid", b.KeyValid, b.B, b.T); err != nil {
		return err
	}
	if b.TokenTypes != nil || b.ClassLabels != nil {
		return errors.New("batch: the encoder–decoder uses no TokenTypes or ClassLabels; leave them nil")
	}
	return nil
}

// reserve sizes every buffer for B rows, S source and T decoder positions.
func (s *encDecState) reserve(cfg Config, tp *tpGroup, B, S, T int) {
	C, H, V, NH := cfg.NEmbd, cfg.NHidden, cfg.VocabSize, cfg.NHead
	Cl, H, NH := tp.part(C), tp.part(H), tp.part(NH) // this rank's heads and hidden units
	Ns, Nt := B*S, B*T
	Nmax, L := max(Ns, Nt), max(S, T)
	s.src, s.tokens, s.targets = growI32(s.src, Ns), growI32(s.tokens, Nt), growI32(s.targets, Nt)
	s.e0, s.e0Mask = grow(s.e0, Ns*C), grow(s.e0Mask, Ns*C)
	s.d0, s.d0Mask = grow(s.d0, Nt*C), grow(s.d0Mask, Nt*C)
	if len(s.enc) != cfg.NLayer {
		s.enc = make([]encLayerActs, cfg.NLayer)
	}
	if len(s.dec) != cfg.NDecLayer {
		s.dec = make([]decLayerActs, cfg.NDecLayer)
	}
	for i := range s.enc {
		s.enc[i].self.reserve(B, S, S, C, Cl, NH)
		s.enc[i].ffn.reserve(Ns, C, H)
	}
	for i := range s.dec {
		s.dec[i].self.reserve(B, T, T, C, Cl, NH)
		s.dec[i].cross.reserve(B, T, S, C, Cl, NH)
		s.dec[i].ffn.reserve(Nt, C, H)
	}
	s.logits, s.probs, s.dlogits = grow(s.logits, Nt*V), grow(s.probs, Nt*V), grow(s.dlogits, Nt*V)
	s.attScratch = grow(s.attScratch, (&Attention{HeadSize: C / cfg.NHead}).ScratchSize(L, L))
	s.dA, s.dB, s.dr, s.dq, s.dy = grow(s.dA, Nmax*C), grow(s.dB, Nmax*C), grow(s.dr, Nmax*C), grow(s.dq, Nmax*C), grow(s.dy, Nmax*C)
	s.dk, s.dv = grow(s.dk, Nmax*C), grow(s.dv, Nmax*C)
	s.dmem, s.dE = grow(s.dmem, Ns*C), grow(s.dE, Ns*C)
	s.dpre, s.dact = grow(s.dpre, Nmax*H), grow(s.dact, Nmax*H)
}

// attnArgs is the Attention call of sub-layer activations a.
func (m *EncDec) attnArgs(a *attnActs, B, Tq, Tk int, keyValid []uint8) AttnArgs {
	C := m.tp.part(m.cfg.NEmbd) // this rank's heads
	return AttnArgs{B: B, T: Tq, S: Tk, Q: a.q, LDQ: C, K: a.k, V: a.v, LDKV: C, Out: a.y, LDO: C,
		KeyValid: keyValid, Att: a.att, Mask: a.attMask, Scratch: m.s.attScratch, GEMM: m.params.gemm}
}

// dropInPlace multiplies d by a dropout mask saved by Forward (nothing when
// dropout was not active).
func (m *EncDec) dropInPlace(d, mask []float32, train bool) {
	if !m.drop.Active(train) {
		return
	}
	for i := range d {
		d[i] *= mask[i]
	}
}

// embed writes out (N,C) = Dropout(emb[ids]·√C + PE[t]) for rows of T positions.
func (m *EncDec) embed(emb *Embedding, out, mask []float32, ids []int32, B, T int, train bool) {
	C := m.cfg.NEmbd
	emb.Forward(m.params, out, ids)
	sc := float32(math.Sqrt(float64(C)))
	for i := range out {
		out[i] *= sc
	}
	AddPositional(out, m.pe, B, T, C)
	m.drop.Forward(m.rng, out, mask, out, train)
}

// encode runs the encoder on s.src (B,S) and returns the memory (B·S,C).
func (m *EncDec) encode(ctx context.Context, B, S int, train bool) ([]float32, error) {
	s := &m.s
	Ns := B * S
	m.embed(&m.srcEmb, s.e0[:Ns*m.cfg.NEmbd], s.e0Mask, s.src[:Ns], B, S, train)
	x := s.e0
	for i := range m.enc {
		l, a := &m.enc[i], &s.enc[i]
		if err := l.self.forward(ctx, m, &a.self, x, x, B, S, S, s.srcValid, train); err != nil {
			return nil, err
		}
		if err := l.ffn.forward(ctx, m, &a.ffn, a.self.out, Ns, train); err != nil {
			return nil, err
		}
		x = a.ffn.out
	}
	return x, nil
}

// decode runs the decoder on s.tokens (B,T) over mem and writes s.logits (B·T,V).
func (m *EncDec) decode(ctx context.Context, mem []float32, B, S, T int, train bool) error {
	s := &m.s
	Nt := B * T
	m.embed(&m.tgtEmb, s.d0[:Nt*m.cfg.NEmbd], s.d0Mask, s.tokens[:Nt], B, T, train)
	x := s.d0
	for i := range m.dec {
		l, a := &m.dec[i], &s.dec[i]
		if err := l.self.forward(ctx, m, &a.self, x, x, B, T, T, s.keyValid, train); err != nil {
			return err
		}
		if err := l.cross.forward(ctx, m, &a.cross, a.self.out, mem, B, T, S, s.srcValid, train); err != nil {
			return err
		}
		if err := l.ffn.forward(ctx, m, &a.ffn, a.cross.out, Nt, train); err != nil {
			return err
		}
		x = a.ffn.out
	}
	m.proj.Forward(m.params, s.logits, x, Nt)
	return nil
}

// Forward runs the model on b (Src/SrcValid into the encoder, Tokens/KeyValid
// into the decoder) and returns the loss over Targets (0 when Targets is
// nil). train enables dropout. The activations are kept for Backward.
func (m *EncDec) Forward(ctx context.Context, b *Batch, train bool) (float32, error) {
	s := &m.s
	s.ready = false
	if err := m.validate(b); err != nil {
		return 0, err
	}
	B, S, T, V := b.B, b.S, b.T, m.cfg.VocabSize
	Nt := B * T
	s.reserve(m.cfg, &m.tp, B, S, T)
	s.B, s.S, s.T, s.train = B, S, T, train
	copy(s.src, b.Src)
	copy(s.tokens, b.Tokens)
	s.srcValid, s.keyValid = b.SrcValid, b.KeyValid
	mem, err := m.encode(ctx, B, S, train)
	if err != nil {
		return 0, err
	}
	if err := m.decode(ctx, mem, B, S, T, train); err != nil {
		return 0, err
	}
	if b.Targets == nil {
		return 0, nil
	}
	copy(s.targets, b.Targets)
	loss, denom := CrossEntropy{V: V}.Forward(s.probs, s.logits, s.targets, Nt, b.LossDenom)
	s.denom = denom
	s.ready = true
	return loss, nil
}

// Backward accumulates d(loss)/d(parameters) of the last Forward into
// Params().Grad. It panics when the last Forward failed or had no Targets;
// it fails only on a tensor-parallel all-reduce.
func (m *EncDec) Backward(ctx context.Context) error {
	s := &m.s
	if !s.ready {
		panic("model: EncDec.Backward needs a successful Forward with Targets")
	}
	p, cfg := m.params, m.cfg
	B, S, T, C, V := s.B, s.S, s.T, cfg.NEmbd, cfg.VocabSize
	Ns, Nt := B*S, B*T
	train := s.train
	m.marks.begin(len(p.Grad))
	mem := s.e0
	if n := len(s.enc); n > 0 {
		mem = s.enc[n-1].ffn.out
	}

	dlogits := s.dlogits[:Nt*V]
	clear(dlogits)
	CrossEntropy{V: V}.Backward(dlogits, s.probs, s.targets, Nt, s.denom, 1)
	dx, other := s.dA[:Nt*C], s.dB[:Nt*C]
	clear(dx)
	last := s.d0
	if n := len(s.dec); n > 0 {
		last = s.dec[n-1].ffn.out
	}
	m.proj.Backward(p, dx, dlogits, last, Nt)

	// decoder, last layer first; dx = d loss / d(layer output)
	dmem := s.dmem[:Ns*C]
	clear(dmem)
	for i := len(m.dec) - 1; i >= 0; i-- {
		l, a := &m.dec[i], &s.dec[i]
		x := s.d0
		if i > 0 {
			x = s.dec[i-1].ffn.out
		}
		clear(other)
		if err := l.ffn.backward(ctx, m, &a.ffn, other, dx, a.cross.out, Nt, train); err != nil {
			return err
		}
		clear(dx)
		if err := l.cross.backward(ctx, m, &a.cross, dx, dmem, other, a.self.out, mem, B, T, S, s.srcValid, train); err != nil {
			return err
		}
		clear(other)
		if err := l.self.backward(ctx, m, &a.self, other, nil, dx, x, x, B, T, T, s.keyValid, train); err != nil {
			return err
		}
		m.marks.finalFrom(ctx, l.self.q.W.Offset)
		dx, other = other, dx
	}
	m.embedBackward(&m.tgtEmb, dx, s.d0Mask, s.tokens[:Nt], train)
	// dmem holds every cross-attention's k/v part of d loss/d memory (f).
	if err := m.tp.reduce(ctx, dmem); err != nil {
		return err
	}

	// encoder, last layer first; de = d loss / d(layer output)
	de, eo := dmem, s.dE[:Ns*C]
	for i := len(m.enc) - 1; i >= 0; i-- {
		l, a := &m.enc[i], &s.enc[i]
		x := s.e0
		if i > 0 {
			x = s.enc[i-1].ffn.out
		}
		clear(eo)
		if err := l.ffn.backward(ctx, m, &a.ffn, eo, de, a.self.out, Ns, train); err != nil {
			return err
		}
		clear(de)
		if err := l.self.backward(ctx, m, &a.self, de, nil, eo, x, x, B, S, S, s.srcValid, train); err != nil {
			return err
		}
		m.marks.finalFrom(ctx, l.self.q.W.Offset)
	}
	m.embedBackward(&m.srcEmb, de, s.e0Mask, s.src[:Ns], train)
	m.marks.finalFrom(ctx, 0)
	return nil
}

// embedBackward back-propagates dout (N,C) through embed; dout is clobbered.
func (m *EncDec) embedBackward(emb *Embedding, dout, mask []float32, ids []int32, train bool) {
	m.dropInPlace(dout, mask, train)
	sc := float32(math.Sqrt(float64(m.cfg.NEmbd)))
	for i := range dout {
		dout[i] *= sc
	}
	emb.Backward(m.params, dout, ids)
}
