package model

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ringmaster-ml/ringmaster/pkg/shard"
)

// TensorParallel places a model on one rank of a Megatron tensor-parallel
// (TP) group of Size ranks (Shoeybi et al. 2019). Rank r holds attention heads
// [r·H/t, (r+1)·H/t) and MLP hidden units [r·F/t, (r+1)·F/t) of every block
// (t = Size, H = n_head, F = n_hidden):
//
//   - column-parallel layers (GPT c_attn and mlp.c_fc; BERT query, key,
//     value and intermediate; encdec q_proj, k_proj, v_proj and fc1) keep the
//     output rows (PyTorch (out,in) layout) and bias entries of the local
//     heads or hidden units; GPT's fused c_attn keeps the local rows of each
//     of its q, k and v blocks;
//   - row-parallel layers (attention c_proj / dense / out_proj, MLP c_proj /
//     output / fc2) keep the input columns of the local heads or hidden units;
//     their bias is whole and is added once, after the sum;
//   - embeddings, LayerNorms and the heads (lm_head, ln_f, the BERT MLM and
//     [CLS] heads) are replicated: every rank holds and updates a full copy.
//
// Per block there are two all-reduces forward (the Megatron g operator: the
// partial outputs of the attention and MLP output projections are summed)
// and two backward (the f operator: the gradient with respect to the input of
// the column-parallel layers is summed). The encoder–decoder's decoder
// blocks have three sub-layers (self-attention, cross-attention, MLP), so
// three each way, and one more backward all-reduce sums the gradient of the
// encoder output (memory) from every cross-attention's k and v projections.
//
// Every activation outside the sharded regions is therefore the same on all
// ranks (the all-reduce leaves identical sums everywhere), and so is every
// gradient of a replicated parameter: each rank runs the identical
// computation on identical inputs. An optimizer stepping each rank's local
// buffer keeps the replicas identical without any further communication.
//
// Dropout: masks on replicated activations come from the model's seeded
// generator, which every rank draws from in the same order, so they agree
// across ranks. Attention-probability dropout acts on local heads and uses a
// second generator seeded per rank (as Megatron's model-parallel RNG does).
// With dropout the TP run is therefore statistically, not bitwise, the TP=1
// run; without dropout it is the TP=1 run up to float summation order.
type TensorParallel struct {
	Rank, Size int
	// AllReduce sums buf element-wise over the group's ranks, in place. Every
	// rank must receive bitwise identical sums (sum in a fixed rank order).
	// The model calls it in the same order on every rank, with buffers of
	// the same length; it is not needed (may be nil) when Size is 1.
	AllReduce func(buf []float32) error
}

// Option configures New and the architecture constructors.
type Option func(*options)

type options struct {
	tp      TensorParallel
	compute Compute
}

// applyOptions is opts over the defaults: no tensor parallelism, gonum's
// reference GEMM, GOMAXPROCS layer threads.
func applyOptions(opts []Option) options {
	o := options{tp: TensorParallel{Rank: 0, Size: 1}}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTensorParallel builds only rank tp.Rank's shard of the model (see
// TensorParallel). Its parameters equal the corresponding slices of the
// whole model built from the same seed.
func WithTensorParallel(tp TensorParallel) Option {
	return func(o *options) { o.tp = tp }
}

// newTPGroup validates the tensor-parallel layout tp against cfg. seed
// seeds the per-rank dropout generator.
func newTPGroup(cfg Config, seed int64, tp TensorParallel) (tpGroup, error) {
	switch {
	case tp.Size < 1:
		return tpGroup{}, fmt.Errorf("parallel.tp: group size must be ≥ 1, got %d", tp.Size)
	case tp.Rank < 0 || tp.Rank >= tp.Size:
		return tpGroup{}, fmt.Errorf("parallel.tp: rank %d out of range [0,%d)", tp.Rank, tp.Size)
	case cfg.NHead%tp.Size != 0:
		return tpGroup{}, fmt.Errorf("parallel.tp: n_head %d is not divisible by tp %d; pick tp dividing n_head", cfg.NHead, tp.Size)
	case cfg.NHidden%tp.Size != 0:
		return tpGroup{}, fmt.Errorf("parallel.tp: MLP width (n_hidden) %d is not divisible by tp %d", cfg.NHidden, tp.Size)
	case tp.Size > 1 && tp.AllReduce == nil:
		return tpGroup{}, fmt.Errorf("parallel.tp: AllReduce is nil; a group of %d ranks needs a sum all-reduce", tp.Size)
	}
	g := tpGroup{TensorParallel: tp}
	if tp.Size > 1 {
		g.rng = newRNG(seed, 2+uint64(tp.Rank))
	}
	return g, nil
}

// tpGroup is a model's view of its tensor-parallel group; Size 1 (no
// tensor parallelism) makes every operation the plain single-process one.
type tpGroup struct {
	TensorParallel
	rng *rand.Rand // dropout inside the sharded region (attention); nil when Size is 1
}

// active reports whether the model is sharded (Size > 1).
func (t *tpGroup) active() bool { return t.Size > 1 }

// part is this rank's share of n (heads, columns, hidden units).
func (t *tpGroup) part(n int) int { return n / t.Size }

// attnRNG is the generator for dropout on local attention heads: the model's
// own (shared) one without tensor parallelism, the per-rank one with it.
func (t *tpGroup) attnRNG(shared *rand.Rand) *rand.Rand {
	if t.rng != nil {
		return t.rng
	}
	return shared
}

// reduce sums buf over the group in place (nothing when Size is 1).
func (t *tpGroup) reduce(buf []float32) error {
	if !t.active() {
		return nil
	}
	if err := t.AllReduce(buf); err != nil {
		return fmt.Errorf("tensor-parallel all-reduce (rank %d of %d): %w", t.Rank, t.Size, err)
	}
	return nil
}

// column adds a column-parallel Linear of in → out features: this rank keeps
// rows (output features) of its share. The out features are parts equal
// blocks (3 for a fused q,k,v projection), each split across the group.
func (t *tpGroup) column(b *Builder, name string, in, out, parts int, bias bool) Linear {
	if !t.active() {
		return NewLinear(b, name, in, out, bias)
	}
	l := Linear{In: in, Out: t.part(out)}
	l.W = b.addShard(name+".weight", &Shard{Full: []int{out, in}, Dim: 0, Parts: parts, Rank: t.Rank, Size: t.Size})
	if bias {
		l.B = b.addShard(name+".bias", &Shard{Full: []int{out}, Dim: 0, Parts: parts, Rank: t.Rank, Size: t.Size})
	}
	return l
}

// row adds a row-parallel Linear of in → out features: this rank keeps the
// columns (input features) of its share; the bias is whole (replicated).
func (t *tpGroup) row(b *Builder, name string, in, out int, bias bool) Linear {
	if !t.active() {
		return NewLinear(b, name, in, out, bias)
	}
	l := Linear{In: t.part(in), Out: out}
	l.W = b.addShard(name+".weight", &Shard{Full: []int{out, in}, Dim: 1, Parts: 1, Rank: t.Rank, Size: t.Size})
	if bias {
		l.B = b.Add(name+".bias", out)
	}
	return l
}

// rowForward runs a row-parallel Linear: out (N,Out) = Σ_ranks inp_r·W_rᵀ + b,
// inp (N,In) being this rank's input columns. The sum is the g all-reduce;
// the bias is added once, after it. Without tensor parallelism it is
// l.Forward.
func (t *tpGroup) rowForward(p *Params, l *Linear, out, inp []float32, n int) error {
	if !t.active() {
		l.Forward(p, out, inp, n)
		return nil
	}
	noBias := *l
	noBias.B = View{}
	noBias.Forward(p, out, inp, n)
	out = out[:n*l.Out]
	if err := t.reduce(out); err != nil {
		return err
	}
	if l.B.Present() {
		bias := p.Value(l.B)
		for i := 0; i < n; i++ {
			addTo(out[i*l.Out:(i+1)*l.Out], bias)
		}
	}
	return nil
}

// rowBackward is the backward of rowForward: dinp (N,In) = dout·W_r +
// beta·dinp, dW_r += doutᵀ·inp, db += Σ dout. dout (N,Out) is the same on
// every rank, so the replicated bias gets the same gradient everywhere.
func (t *tpGroup) rowBackward(p *Params, l *Linear, dinp, dout, inp []float32, n int, beta float32) {
	if !t.active() {
		l.backward(p, dinp, dout, inp, n, beta)
		return
	}
	noBias := *l
	noBias.B = View{}
	noBias.backward(p, dinp, dout, inp, n, beta)
	if l.B.Present() {
		db := p.Gradient(l.B)
		for i := 0; i < n; i++ {
			addTo(db, dout[i*l.Out:(i+1)*l.Out])
		}
	}
}

// Shard says which piece of a whole tensor a view holds. Dimension Dim of
// the whole shape Full consists of Parts equal blocks (3 for the q, k and v
// rows of GPT's fused c_attn, 1 otherwise); each block is cut into Size equal
// pieces, and the view holds piece Rank of every block, concatenated in block
// order. The view's own Shape is Full with Full[Dim] divided by Size.
//
// A view without a Shard (nil) holds the whole tensor; under tensor
// parallelism that means it is replicated on every rank. Names are those of
// the whole model, so a checkpoint can gather pieces by name (CopyToFull)
// and reshard them (CopyFromFull).
type Shard = shard.Piece

// addShard appends this rank's piece of a sharded tensor and returns its view.
func (b *Builder) addShard(name string, s *Shard) View {
	v := b.Add(name, s.Shape()...)
	v.Shard = s
	b.views[len(b.views)-1].Shard = s
	return v
}

// FullShape is the shape of the whole tensor v holds (a piece of).
func (v View) FullShape() []int {
	if v.Shard == nil {
		return v.Shape
	}
	return v.Shard.Full
}

// CopyFromFull copies v's piece of the whole tensor full (FullShape,
// row-major) into local (v.Size() values).
func (v View) CopyFromFull(local, full []float32) {
	v.walk(func(lo, fo, n int) { copy(local[lo:lo+n], full[fo:fo+n]) })
}

// CopyToFull copies local (v.Size() values) into v's piece of the whole
// tensor full (FullShape, row-major); the rest of full is left unchanged.
func (v View) CopyToFull(full, local []float32) {
	v.walk(func(lo, fo, n int) { copy(full[fo:fo+n], local[lo:lo+n]) })
}

// walk calls f(localOffset, fullOffset, n) for each contiguous run of v's
// piece, in local order.
func (v View) walk(f func(lo, fo, n int)) {
	if v.Shard == nil {
		f(0, 0, v.Size())
		return
	}
	v.Shard.Walk(f)
}

// initFromWhole is how every architecture starts a TP rank: build the whole
// model from the same seed (build without options: no tensor parallelism)
// and copy this rank's slices of it into local.
func initFromWhole[M interface{ Params() *Params }](local *Params, build func(Config, int64, ...Option) (M, error), cfg Config, seed int64) error {
	full, err := build(cfg, seed)
	if err != nil {
		return err
	}
	return copyShards(local, full.Params())
}

// copyShards sets every view of local to its piece of the same-named tensor
// of full (the whole model): how a TP rank is initialised.
func copyShards(local, full *Params) error {
	for _, v := range local.Views {
		fv, ok := full.Lookup(v.Name)
		if !ok || !slices.Equal(fv.Shape, v.FullShape()) {
			return fmt.Errorf("parallel.tp: tensor %q (whole shape %v) has no match in the whole model", v.Name, v.FullShape())
		}
		v.CopyFromFull(local.Value(v), full.Value(fv))
	}
	return nil
}

// gradMarks reports finished ranges of Params.Grad to a hook during Backward.
// Parameters are laid out in forward order and Backward finishes them from
// the end, so each report is [lo, previous lo): the ranges tile the buffer
// once per Backward, in decreasing order.
type gradMarks struct {
	fn   func(lo, hi int)
	next int // start of the last reported range (len(Grad) before the first)
}

// begin starts a Backward over a buffer of n gradients.
func (g *gradMarks) begin(n int) { g.next = n }

// finalFrom reports that every gradient from lo to the end of the buffer is
// final.
func (g *gradMarks) finalFrom(lo int) {
	if lo >= g.next {
		return
	}
	if g.fn != nil {
		g.fn(lo, g.next)
	}
	g.next = lo
}
