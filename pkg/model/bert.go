package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// BERT is the original BERT encoder (Devlin et al. 2018; google-research/bert
// modeling.py) with its masked-LM head, as in bench/torch/bert_mlm.py:
//
//	x   = Dropout(LN(word[ids] + pos[t] + type[types]))
//	h   = LN(x + Dropout(Dense(SelfAttn(x))))          per layer, post-LN,
//	x'  = LN(h + Dropout(Output(act(Intermediate(h)))))  bidirectional attention with key padding
//	MLM = LN(act(Dense(x[masked]))) · wordᵀ + mlm_bias     decoder tied to the word embeddings
//
// The loss is the cross-entropy over the positions whose Target is not
// IgnoreIndex (Batch.LossDenom semantics); Logits returns one row per such
// position, in (b,t) order. With Config.NClasses > 0 a [CLS] head is added:
// pooled = tanh(pooler.dense(x[:,0])), class logits = classifier(pooled), and
// the mean cross-entropy against Batch.ClassLabels is added to the loss. That
// class term is always the mean over this batch's labelled rows: LossDenom
// applies to the masked-LM term only (a data-parallel run with a [CLS] head
// would need a global class-label count as well; not provided yet).
//
// Padding uses Attention's KeyValid masking (exp(-inf) = 0) where BERT adds
// -10000 to padded keys' scores: for a query with at least one real key (every
// row has its [CLS]) the two agree exactly in float32, where exp(-10000) is 0.
type BERT struct {
	cfg    Config
	params *Params
	rng    *rand.Rand // dropout masks

	wordEmb, posEmb, typeEmb Embedding
	embLN                    LayerNorm
	layers                   []bertLayer
	mlmDense                 Linear
	mlmLN                    LayerNorm
	mlmDecoder               Linear // W is wordEmb.W (tied), B is mlm_bias
	pooler, classifier       Linear // present when NClasses > 0
	attn                     Attention
	drop                     Dropout
	tp                       tpGroup   // tensor-parallel shard (Size 1: the whole model)
	marks                    gradMarks // SetGradHook

	s bertState
}

var _ Model = (*BERT)(nil)

type bertLayer struct {
	query, key, value, dense Linear
	attnLN                   LayerNorm
	intermediate, output     Linear
	outLN                    LayerNorm
}

// bertLayerActs is what one layer's Forward saves for Backward; N = B·T.
type bertLayerActs struct {
	q, k, v      []float32 // (N,C)
	att, attMask []float32 // (B,NH,T,T) probabilities, dropout mask
	y            []float32 // (N,C) attention output, heads concatenated
	mask1        []float32 // (N,C) dropout mask on Dense(y)
	r1           []float32 // (N,C) x + Dropout(Dense(y)), input of attnLN
	mean1, rstd1 []float32 // (N)
	h            []float32 // (N,C) attnLN output
	pre, act     []float32 // (N,H) Intermediate(h), act(pre)
	mask2        []float32 // (N,C) dropout mask on Output(act)
	r2           []float32 // (N,C) h + Dropout(Output(act)), input of outLN
	mean2, rstd2 []float32 // (N)
	out          []float32 // (N,C) outLN output, the next layer's input
}

// bertState holds the activations of the last Forward and the backward
// scratch. Buffers grow when a batch is larger than any before and are
// reused otherwise, so a training step allocates nothing after warm-up.
type bertState struct {
	B, T, M int  // batch shape of the last Forward; M = number of MLM rows
	train   bool // the flag of the last Forward
	ready   bool // Forward succeeded and Backward may run

	ids, types []int32 // (N)
	keyValid   []uint8 // (N) nil: all real
	sel        []int32 // (M) flat (b,t) index of each MLM row
	selTarget  []int32 // (M)
	classLabel []int32 // (B)
	nClass     int     // number of class labels in use (0: no class loss)

	emb, embMean, embRstd, x0, embMask []float32 // (N,C), (N), (N), (N,C), (N,C)
	layers                             []bertLayerActs
	attScratch                         []float32 // Attention.ScratchSize(T,T)

	// MLM head, (M,·)
	hsel, md, mg, mlMean, mlRstd, ml, logits, probs []float32
	mlmDenom                                        float32

	// [CLS] head, (B,·)
	cls, pd, pt, cl, clProbs []float32
	clsDenom                 float32

	// backward scratch
	dA, dB, dq, dk, dv, dy, dr []float32 // (N,C)
	dpre, dact                 []float32 // (N,H)
	dlogits, dml, dmg, dmd     []float32 // MLM (M,·)
	dcl, dpt, dpd              []float32 // [CLS] (B,·)
}

// NewBERT builds a BERT for cfg (defaults filled in) with parameters
// initialised as bert_mlm.py does: every Linear and Embedding weight from a
// normal(0, 0.02) truncated at ±2σ, biases 0, LayerNorm weight 1 and bias 0.
// seed fixes the initialisation and the dropout masks. WithTensorParallel
// builds one rank's shard, initialised as the slices of the whole model.
func NewBERT(cfg Config, seed int64, opts ...Option) (*BERT, error) {
	cfg, err := buildable(cfg, ArchBERT)
	if err != nil {
		return nil, err
	}
	return newBERT(cfg, seed, opts...)
}

// newBERT is NewBERT for a config buildable has checked.
func newBERT(cfg Config, seed int64, opts ...Option) (*BERT, error) {
	o := applyOptions(opts)
	if o.recompute != RecomputeNone {
		return nil, fmt.Errorf("train.recompute: %s is implemented for model.arch gpt; use none for bert", o.recompute)
	}
	tp, err := newTPGroup(cfg, seed, o.tp)
	if err != nil {
		return nil, err
	}
	C, H, V := cfg.NEmbd, cfg.NHidden, cfg.VocabSize
	eps := cfg.LayerNormEps
	m := &BERT{cfg: cfg, rng: newRNG(seed, 1), drop: Dropout{P: float32(cfg.Dropout)}, tp: tp}
	m.attn = Attention{NHead: tp.part(cfg.NHead), HeadSize: C / cfg.NHead, Dropout: m.drop}

	var b Builder
	m.wordEmb = NewEmbedding(&b, "embeddings.word_embeddings", V, C)
	m.posEmb = NewEmbedding(&b, "embeddings.position_embeddings", cfg.BlockSize, C)
	m.typeEmb = NewEmbedding(&b, "embeddings.token_type_embeddings", cfg.TypeVocabSize, C)
	m.embLN = NewLayerNorm(&b, "embeddings.LayerNorm", C, eps, true)
	m.layers = make([]bertLayer, cfg.NLayer)
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("layers.%d.", i)
		l.query = tp.Column(&b, p+"attention.query", C, C, 1, true)
		l.key = tp.Column(&b, p+"attention.key", C, C, 1, true)
		l.value = tp.Column(&b, p+"attention.value", C, C, 1, true)
		l.dense = tp.Row(&b, p+"attention.dense", C, C, true)
		l.attnLN = NewLayerNorm(&b, p+"attention.LayerNorm", C, eps, true)
		l.intermediate = tp.Column(&b, p+"intermediate", C, H, 1, true)
		l.output = tp.Row(&b, p+"output", H, C, true)
		l.outLN = NewLayerNorm(&b, p+"LayerNorm", C, eps, true)
	}
	m.mlmDense = NewLinear(&b, "mlm_dense", C, C, true)
	m.mlmLN = NewLayerNorm(&b, "mlm_LayerNorm", C, eps, true)
	m.mlmDecoder = Linear{W: m.wordEmb.W, B: b.Add("mlm_bias", V), In: C, Out: V}
	if cfg.NClasses > 0 {
		m.pooler = NewLinear(&b, "pooler.dense", C, C, true)
		m.classifier = NewLinear(&b, "classifier", C, cfg.NClasses, true)
	}
	params, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("bert: laying out parameters: %w", err)
	}
	params.gemm = o.compute.GEMM
	m.params = params
	if tp.active() {
		return m, initFromWhole(params, newBERT, cfg, seed)
	}

	// Initialisation (biases are already 0 from Build).
	rng := newRNG(seed, 0)
	const std = 0.02
	for _, e := range []Embedding{m.wordEmb, m.posEmb, m.typeEmb} {
		fillTruncNormal(params.Value(e.W), std, rng)
	}
	m.embLN.InitParams(params)
	for i := range m.layers {
		l := &m.layers[i]
		for _, lin := range []Linear{l.query, l.key, l.value, l.dense, l.intermediate, l.output} {
			fillTruncNormal(params.Value(lin.W), std, rng)
		}
		l.attnLN.InitParams(params)
		l.outLN.InitParams(params)
	}
	fillTruncNormal(params.Value(m.mlmDense.W), std, rng)
	m.mlmLN.InitParams(params)
	if cfg.NClasses > 0 {
		fillTruncNormal(params.Value(m.pooler.W), std, rng)
		fillTruncNormal(params.Value(m.classifier.W), std, rng)
	}
	return m, nil
}

// fillTruncNormal fills d with normal(0, std²) samples truncated to ±2·std
// (torch.nn.init.trunc_normal_ with a = -2·std, b = 2·std), by rejection.
func fillTruncNormal(d []float32, std float64, rng *rand.Rand) {
	for i := range d {
		x := rng.NormFloat64()
		for x < -2 || x > 2 {
			x = rng.NormFloat64()
		}
		d[i] = float32(x * std)
	}
}

// Config returns the model's configuration, defaults filled in.
func (m *BERT) Config() Config { return m.cfg }

// Params returns the flat parameter buffer and its manifest.
func (m *BERT) Params() *Params { return m.params }

// Close does nothing: a BERT runs its layers on the calling goroutine.
func (m *BERT) Close() {}

// SetGradHook implements Model: ranges are the heads, each layer from the
// last, then the embeddings (the word embeddings are also the MLM decoder).
func (m *BERT) SetGradHook(fn func(ctx context.Context, lo, hi int)) { m.marks.fn = fn }

// Logits returns the masked-LM logits of the last Forward, (M,V): one row per
// position whose Target is not IgnoreIndex, in (b,t) order. The slice is
// reused by the next Forward.
func (m *BERT) Logits() []float32 { return m.s.logits[:m.s.M*m.cfg.VocabSize] }

// ClassLogits returns the [CLS] head's logits of the last Forward, (B,NClasses),
// or nil when the model has no classification head.
func (m *BERT) ClassLogits() []float32 {
	if m.cfg.NClasses == 0 {
		return nil
	}
	return m.s.cl[:m.s.B*m.cfg.NClasses]
}

// validate checks b against the model before anything is written.
func (m *BERT) validate(b *Batch) error {
	if err := validateShape(b, m.cfg.BlockSize); err != nil {
		return err
	}
	B, T, V := b.B, b.T, m.cfg.VocabSize
	if err := ValidateIDs("Tokens", b.Tokens, B, T, V, false); err != nil {
		return err
	}
	if b.Targets != nil {
		if err := ValidateIDs("Targets", b.Targets, B, T, V, true); err != nil {
			return fmt.Errorf("%w (BERT: the original token at masked positions, IgnoreIndex elsewhere)", err)
		}
	}
	if err := ValidateMask("KeyValid", b.KeyValid, B, T); err != nil {
		return err
	}
	if b.TokenTypes != nil {
		if err := ValidateIDs("TokenTypes", b.TokenTypes, B, T, m.cfg.TypeVocabSize, false); err != nil {
			return fmt.Errorf("%w (model.type_vocab_size)", err)
		}
	}
	if b.ClassLabels != nil {
		if m.cfg.NClasses == 0 {
			return errors.New("batch.ClassLabels: given but the model has no classification head; set model.n_classes or leave ClassLabels nil")
		}
		if err := ValidateIDs("ClassLabels", b.ClassLabels, B, 1, m.cfg.NClasses, true); err != nil {
			return fmt.Errorf("%w (model.n_classes)", err)
		}
	}
	if b.Src != nil || b.SrcValid != nil {
		return errors.New("batch: BERT has no encoder input; Src and SrcValid must be nil")
	}
	return nil
}

// reserve sizes every buffer for a (B,T) batch, growing only when needed.
func (s *bertState) reserve(cfg Config, tp *tpGroup, B, T int) {
	N, C, H, V, NH := B*T, cfg.NEmbd, cfg.NHidden, cfg.VocabSize, cfg.NHead
	Cl, H, NH := tp.part(C), tp.part(H), tp.part(NH) // this rank's heads and hidden units
	s.ids, s.types, s.sel, s.selTarget = growI32(s.ids, N), growI32(s.types, N), growI32(s.sel, N), growI32(s.selTarget, N)
	s.emb, s.x0, s.embMask = grow(s.emb, N*C), grow(s.x0, N*C), grow(s.embMask, N*C)
	s.embMean, s.embRstd = grow(s.embMean, N), grow(s.embRstd, N)
	if len(s.layers) != cfg.NLayer {
		s.layers = make([]bertLayerActs, cfg.NLayer)
	}
	for i := range s.layers {
		a := &s.layers[i]
		a.q, a.k, a.v, a.y = grow(a.q, N*Cl), grow(a.k, N*Cl), grow(a.v, N*Cl), grow(a.y, N*Cl)
		a.att, a.attMask = grow(a.att, B*NH*T*T), grow(a.attMask, B*NH*T*T)
		a.mask1, a.r1, a.h = grow(a.mask1, N*C), grow(a.r1, N*C), grow(a.h, N*C)
		a.mean1, a.rstd1, a.mean2, a.rstd2 = grow(a.mean1, N), grow(a.rstd1, N), grow(a.mean2, N), grow(a.rstd2, N)
		a.pre, a.act = grow(a.pre, N*H), grow(a.act, N*H)
		a.mask2, a.r2, a.out = grow(a.mask2, N*C), grow(a.r2, N*C), grow(a.out, N*C)
	}
	s.attScratch = grow(s.attScratch, (&Attention{HeadSize: C / cfg.NHead}).ScratchSize(T, T))
	// MLM rows: at most N.
	s.hsel, s.md, s.mg, s.ml = grow(s.hsel, N*C), grow(s.md, N*C), grow(s.mg, N*C), grow(s.ml, N*C)
	s.mlMean, s.mlRstd = grow(s.mlMean, N), grow(s.mlRstd, N)
	s.logits, s.probs, s.dlogits = grow(s.logits, N*V), grow(s.probs, N*V), grow(s.dlogits, N*V)
	s.dml, s.dmg, s.dmd = grow(s.dml, N*C), grow(s.dmg, N*C), grow(s.dmd, N*C)
	if K := cfg.NClasses; K > 0 {
		s.classLabel = growI32(s.classLabel, B)
		s.cls, s.pd, s.pt = grow(s.cls, B*C), grow(s.pd, B*C), grow(s.pt, B*C)
		s.cl, s.clProbs, s.dcl = grow(s.cl, B*K), grow(s.clProbs, B*K), grow(s.dcl, B*K)
		s.dpt, s.dpd = grow(s.dpt, B*C), grow(s.dpd, B*C)
	}
	s.dA, s.dB, s.dr = grow(s.dA, N*C), grow(s.dB, N*C), grow(s.dr, N*C)
	s.dq, s.dk, s.dv, s.dy = grow(s.dq, N*Cl), grow(s.dk, N*Cl), grow(s.dv, N*Cl), grow(s.dy, N*Cl)
	s.dpre, s.dact = grow(s.dpre, N*H), grow(s.dact, N*H)
}

// growI32 is grow for int32.
func growI32(buf []int32, n int) []int32 {
	if cap(buf) < n {
		return make([]int32, n)
	}
	return buf[:n]
}

// attnArgs returns the attention call of layer activations a.
func (m *BERT) attnArgs(a *bertLayerActs) AttnArgs {
	s, C := &m.s, m.tp.part(m.cfg.NEmbd) // this rank's heads
	return AttnArgs{B: s.B, T: s.T, S: s.T, Q: a.q, LDQ: C, K: a.k, V: a.v, LDKV: C, Out: a.y, LDO: C,
		KeyValid: s.keyValid, Att: a.att, Mask: a.attMask, Scratch: s.attScratch, GEMM: m.params.gemm}
}

// Forward runs the model on b and returns the loss (masked-LM cross-entropy,
// plus the [CLS] cross-entropy when b.ClassLabels is set; 0 when b has
// neither Targets nor ClassLabels). train enables dropout. The activations
// are kept for Backward.
func (m *BERT) Forward(ctx context.Context, b *Batch, train bool) (float32, error) {
	m.s.ready = false
	if err := m.validate(b); err != nil {
		return 0, err
	}
	cfg, p, s := m.cfg, m.params, &m.s
	B, T, C, V := b.B, b.T, cfg.NEmbd, cfg.VocabSize
	N := B * T
	s.reserve(cfg, &m.tp, B, T)
	s.B, s.T, s.train = B, T, train
	copy(s.ids, b.Tokens)
	if b.TokenTypes != nil {
		copy(s.types, b.TokenTypes)
	} else {
		clear(s.types)
	}
	s.keyValid = b.KeyValid // read-only for the duration of Forward/Backward

	// embeddings: (N,C)
	m.wordEmb.Forward(p, s.emb, s.ids)
	m.posEmb.ForwardPositions(p, s.emb, B, T)
	m.typeEmb.ForwardAdd(p, s.emb, s.types)
	m.embLN.Forward(p, s.x0, s.embMean, s.embRstd, s.emb, N)
	m.drop.Forward(m.rng, s.x0, s.embMask, s.x0, train)

	x := s.x0
	for i := range m.layers {
		l, a := &m.layers[i], &s.layers[i]
		l.query.Forward(p, a.q, x, N)
		l.key.Forward(p, a.k, x, N)
		l.value.Forward(p, a.v, x, N)
		m.attn.Forward(m.tp.attnRNG(m.rng), m.attnArgs(a), train)
		if err := m.tp.rowForward(ctx, p, &l.dense, a.r1, a.y, N); err != nil {
			return 0, err
		}
		m.drop.Forward(m.rng, a.r1, a.mask1, a.r1, train)
		ResidualForward(a.r1, a.r1, x)
		l.attnLN.Forward(p, a.h, a.mean1, a.rstd1, a.r1, N)
		l.intermediate.Forward(p, a.pre, a.h, N)
		ActForward(cfg.Activation, a.act, a.pre)
		if err := m.tp.rowForward(ctx, p, &l.output, a.r2, a.act, N); err != nil {
			return 0, err
		}
		m.drop.Forward(m.rng, a.r2, a.mask2, a.r2, train)
		ResidualForward(a.r2, a.r2, a.h)
		l.outLN.Forward(p, a.out, a.mean2, a.rstd2, a.r2, N)
		x = a.out
	}

	// masked-LM head over the rows with a target
	M := 0
	for i, t := range b.Targets {
		if t != IgnoreIndex {
			s.sel[M], s.selTarget[M] = int32(i), t
			M++
		}
	}
	s.M = M
	for r := 0; r < M; r++ {
		i := int(s.sel[r])
		copy(s.hsel[r*C:(r+1)*C], x[i*C:(i+1)*C])
	}
	var loss float32
	s.mlmDenom = 0
	if M > 0 {
		m.mlmDense.Forward(p, s.md, s.hsel, M)
		ActForward(cfg.Activation, s.mg[:M*C], s.md[:M*C])
		m.mlmLN.Forward(p, s.ml, s.mlMean, s.mlRstd, s.mg, M)
		m.mlmDecoder.Forward(p, s.logits, s.ml, M)
		loss, s.mlmDenom = CrossEntropy{V: V}.Forward(s.probs, s.logits, s.selTarget, M, b.LossDenom)
	}

	// [CLS] classification head
	s.nClass = 0
	if K := cfg.NClasses; K > 0 {
		for r := 0; r < B; r++ {
			copy(s.cls[r*C:(r+1)*C], x[r*T*C:r*T*C+C])
		}
		m.pooler.Forward(p, s.pd, s.cls, B)
		for i, v := range s.pd[:B*C] {
			s.pt[i] = float32(math.Tanh(float64(v)))
		}
		m.classifier.Forward(p, s.cl, s.pt, B)
		if b.ClassLabels != nil {
			s.nClass = B
			copy(s.classLabel, b.ClassLabels)
			closs, cdenom := CrossEntropy{V: K}.Forward(s.clProbs, s.cl, s.classLabel, B, 0)
			s.clsDenom = cdenom
			loss += closs
		}
	}
	s.ready = b.Targets != nil || s.nClass > 0 // something to back-propagate
	return loss, nil
}

// Backward accumulates d(loss)/d(parameters) of the last Forward into
// Params().Grad. It panics when the last Forward failed or had neither
// Targets nor ClassLabels; it fails only on a tensor-parallel all-reduce.
func (m *BERT) Backward(ctx context.Context) error {
	s := &m.s
	if !s.ready {
		panic("model: BERT.Backward needs a successful Forward with Targets or ClassLabels")
	}
	cfg, p := m.cfg, m.params
	B, T, C, V, M := s.B, s.T, cfg.NEmbd, cfg.VocabSize, s.M
	N := B * T
	train := s.train
	m.marks.begin(len(p.Grad))

	// dx accumulates d loss / d(final layer output), (N,C)
	dx := s.dA
	clear(dx)

	// masked-LM head
	if M > 0 {
		dlogits := s.dlogits[:M*V]
		clear(dlogits)
		CrossEntropy{V: V}.Backward(dlogits, s.probs, s.selTarget, M, s.mlmDenom, 1)
		dml, dmg, dmd := s.dml[:M*C], s.dmg[:M*C], s.dmd[:M*C]
		clear(dml)
		m.mlmDecoder.Backward(p, dml, dlogits, s.ml, M)
		clear(dmg)
		m.mlmLN.Backward(p, dmg, dml, s.mg, s.mlMean, s.mlRstd, M)
		clear(dmd)
		ActBackward(cfg.Activation, dmd, dmg, s.md[:M*C])
		dh := s.dr[:M*C] // gradient of the gathered rows
		clear(dh)
		m.mlmDense.Backward(p, dh, dmd, s.hsel, M)
		for r := 0; r < M; r++ {
			i := int(s.sel[r])
			addTo(dx[i*C:(i+1)*C], dh[r*C:(r+1)*C])
		}
	}

	// [CLS] head
	if s.nClass > 0 {
		K := cfg.NClasses
		dcl := s.dcl[:B*K]
		clear(dcl)
		CrossEntropy{V: K}.Backward(dcl, s.clProbs, s.classLabel, B, s.clsDenom, 1)
		dpt, dpd := s.dpt[:B*C], s.dpd[:B*C]
		clear(dpt)
		m.classifier.Backward(p, dpt, dcl, s.pt, B)
		for i, t := range s.pt[:B*C] {
			dpd[i] = dpt[i] * (1 - t*t)
		}
		dcls := s.dr[:B*C]
		clear(dcls)
		m.pooler.Backward(p, dcls, dpd, s.cls, B)
		for r := 0; r < B; r++ {
			addTo(dx[r*T*C:r*T*C+C], dcls[r*C:(r+1)*C])
		}
	}

	m.marks.finalFrom(ctx, m.mlmDense.W.Offset) // the heads

	// layers, last to first; dx holds d loss / d(layer output)
	other := s.dB
	for i := len(m.layers) - 1; i >= 0; i-- {
		l, a := &m.layers[i], &s.layers[i]
		x := s.x0
		if i > 0 {
			x = s.layers[i-1].out
		}
		// out = LN2(r2), r2 = h + Dropout(Output(act))
		dr := s.dr
		clear(dr)
		l.outLN.Backward(p, dr, dx, a.r2, a.mean2, a.rstd2, N)
		dh := other // d loss / d h: the residual path plus the MLP path
		copy(dh, dr)
		m.dropInPlace(dr, a.mask2, train)
		clear(s.dact)
		m.tp.rowBackward(p, &l.output, s.dact, dr, a.act, N, 1)
		clear(s.dpre)
		ActBackward(cfg.Activation, s.dpre, s.dact, a.pre)
		dcol := dr // the MLP path, summed over the tensor-parallel group (f)
		clear(dcol)
		l.intermediate.Backward(p, dcol, s.dpre, a.h, N)
		if err := m.tp.reduce(ctx, dcol); err != nil {
			return err
		}
		addTo(dh, dcol)
		// h = LN1(r1), r1 = x + Dropout(Dense(y))
		clear(dr)
		l.attnLN.Backward(p, dr, dh, a.r1, a.mean1, a.rstd1, N)
		dxIn := dx // d loss / d x, overwriting this layer's dout (no longer needed)
		copy(dxIn, dr)
		m.dropInPlace(dr, a.mask1, train)
		clear(s.dy)
		m.tp.rowBackward(p, &l.dense, s.dy, dr, a.y, N, 1)
		clear(s.dq)
		clear(s.dk)
		clear(s.dv)
		m.attn.Backward(m.attnArgs(a), AttnGrads{DQ: s.dq, DK: s.dk, DV: s.dv, DOut: s.dy}, train)
		dcol = dr // the attention path, summed over the tensor-parallel group (f)
		clear(dcol)
		l.query.Backward(p, dcol, s.dq, x, N)
		l.key.Backward(p, dcol, s.dk, x, N)
		l.value.Backward(p, dcol, s.dv, x, N)
		if err := m.tp.reduce(ctx, dcol); err != nil {
			return err
		}
		addTo(dxIn, dcol)
		m.marks.finalFrom(ctx, l.query.W.Offset)
		dx, other = dxIn, dh
	}

	// embeddings: x0 = Dropout(LN(emb))
	m.dropInPlace(dx, s.embMask, train)
	demb := other
	clear(demb)
	m.embLN.Backward(p, demb, dx, s.emb, s.embMean, s.embRstd, N)
	m.wordEmb.Backward(p, demb, s.ids)
	m.posEmb.BackwardPositions(p, demb, B, T)
	m.typeEmb.Backward(p, demb, s.types)
	m.marks.finalFrom(ctx, 0)
	return nil
}

// dropInPlace multiplies d by a dropout mask saved by Forward (nothing when
// dropout was not active).
func (m *BERT) dropInPlace(d, mask []float32, train bool) {
	if !m.drop.Active(train) {
		return
	}
	for i := range d {
		d[i] *= mask[i]
	}
}
