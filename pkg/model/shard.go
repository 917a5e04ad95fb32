package model

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ringmaster-ml/ringmaster/pkg/shard"
)

// TensorParallel is what a model asks of the tensor-parallel (TP) group it
// is sharded over. The model decides where the Megatron layers go (column
// then row in every attention and MLP sub-layer); the group decides what a
// column- or row-parallel Linear holds on this rank and how partial sums
// are combined. pkg/parallel/tp implements it (Megatron-LM's split, over a
// collective); without WithTensorParallel a model uses the identity, a
// group of one that holds every tensor whole and never communicates.
//
// Every activation outside a sharded region must come out the same on all
// ranks, so Reduce must leave bitwise identical sums everywhere, and the
// model calls it in the same order on every rank with buffers of the same
// length.
type TensorParallel interface {
	// Rank and Size place this rank in its group (0 ≤ Rank < Size).
	Rank() int
	Size() int
	// Column adds a column-parallel Linear of in → out features to b: the
	// rank's share of the output features, whose out features are parts
	// equal blocks (3 for a fused q,k,v projection), each split.
	Column(b *Builder, name string, in, out, parts int, bias bool) Linear
	// Row adds a row-parallel Linear of in → out features to b: the rank's
	// share of the input features; its bias is whole (the model adds it
	// once, after Reduce).
	Row(b *Builder, name string, in, out int, bias bool) Linear
	// Reduce sums buf element-wise over the group, in place: the g
	// operator after a row-parallel product forward, the f operator on the
	// input gradient of the column-parallel products backward.
	Reduce(ctx context.Context, buf []float32) error
}

// whole is the identity TensorParallel: one rank holding everything.
type whole struct{}

func (whole) Rank() int { return 0 }
func (whole) Size() int { return 1 }
func (whole) Column(b *Builder, name string, in, out, _ int, bias bool) Linear {
	return NewLinear(b, name, in, out, bias)
}
func (whole) Row(b *Builder, name string, in, out int, bias bool) Linear {
	return NewLinear(b, name, in, out, bias)
}
func (whole) Reduce(context.Context, []float32) error { return nil }

// Option configures New and the architecture constructors.
type Option func(*options)

type options struct {
	tp        TensorParallel
	compute   Compute
	recompute Recompute
}

// applyOptions is opts over the defaults: no tensor parallelism, gonum's
// reference GEMM, GOMAXPROCS layer threads.
func applyOptions(opts []Option) options {
	o := options{tp: whole{}}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithTensorParallel builds only tp's rank's shard of the model (see
// TensorParallel). Its parameters equal the corresponding slices of the
// whole model built from the same seed.
func WithTensorParallel(tp TensorParallel) Option {
	return func(o *options) { o.tp = tp }
}

// newTPGroup checks that tp can shard cfg. seed seeds the per-rank
// dropout generator.
func newTPGroup(cfg Config, seed int64, tp TensorParallel) (tpGroup, error) {
	if tp.Rank() < 0 || tp.Rank() >= tp.Size() {
		return tpGroup{}, fmt.Errorf("parallel.tp: rank %d out of range [0,%d)", tp.Rank(), tp.Size())
	}
	if err := cfg.CheckTensorParallel(tp.Size()); err != nil {
		return tpGroup{}, err
	}
	g := tpGroup{TensorParallel: tp}
	if tp.Size() > 1 {
		g.rng, g.rngSrc = newRNGSource(seed, 2+uint64(tp.Rank()))
	}
	return g, nil
}

// tpGroup is a model's view of its tensor-parallel group; Size 1 (no
// tensor parallelism) makes every operation the plain single-process one.
type tpGroup struct {
	TensorParallel
	rng    *rand.Rand // dropout inside the sharded region (attention); nil when Size is 1
	rngSrc *rand.PCG  // rng's source (state saved for recomputation)
}

// active reports whether the model is sharded (Size > 1).
func (t *tpGroup) active() bool { return t.Size() > 1 }

// part is this rank's share of n (heads, columns, hidden units).
func (t *tpGroup) part(n int) int { return n / t.Size() }

// attnRNG is the generator for dropout on local attention heads: the model's
// own (shared) one without tensor parallelism, the per-rank one with it.
func (t *tpGroup) attnRNG(shared *rand.Rand) *rand.Rand {
	if t.rng != nil {
		return t.rng
	}
	return shared
}

// reduce sums buf over the group in place (nothing when Size is 1).
func (t *tpGroup) reduce(ctx context.Context, buf []float32) error {
	if !t.active() {
		return nil
	}
	return t.Reduce(ctx, buf)
}

// rowForward runs a row-parallel Linear: out (N,Out) = Σ_ranks inp_r·W_rᵀ + b,
// inp (N,In) being this rank's input columns. The sum is the g all-reduce;
// the bias is added once, after it. Without tensor parallelism it is
// l.Forward.
func (t *tpGroup) rowForward(ctx context.Context, p *Params, l *Linear, out, inp []float32, n int) error {
	if !t.active() {
		l.Forward(p, out, inp, n)
		return nil
	}
	noBias := *l
	noBias.B = View{}
	noBias.Forward(p, out, inp, n)
	out = out[:n*l.Out]
	if err := t.reduce(ctx, out); err != nil {
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

// AddShard appends a piece of a sharded tensor (s.Shape()) and returns its
// view; TensorParallel.Column and Row build their Linears with it.
func (b *Builder) AddShard(name string, s *Shard) View {
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
	fn   func(ctx context.Context, lo, hi int)
	next int // start of the last reported range (len(Grad) before the first)
}

// begin starts a Backward over a buffer of n gradients.
func (g *gradMarks) begin(n int) { g.next = n }

// finalFrom reports that every gradient from lo to the end of the buffer is
// final.
func (g *gradMarks) finalFrom(ctx context.Context, lo int) {
	if lo >= g.next {
		return
	}
	if g.fn != nil {
		g.fn(ctx, lo, g.next)
	}
	g.next = lo
}
