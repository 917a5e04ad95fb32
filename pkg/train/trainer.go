package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel/ddp"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel/tp"
	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// ErrNonFiniteLoss is returned by Step when the loss or the gradient norm is
// NaN or infinite. The parameters are left as they were before the step.
var ErrNonFiniteLoss = errors.New("non-finite loss")

// Trainer is one model replica with its optimizer, dataset and batch buffers.
type Trainer struct {
	Spec  jobspec.Spec
	Data  *data.Dataset
	Model model.Model
	opt   *model.AdamW
	sched model.Schedule

	layout  Layout
	zero1   *ddp.ZeRO1   // optimizer state sharded over the DP group (ZeRO stage 1); nil without
	tp      *tp.Group    // the model's tensor-parallel group (nil when TP is 1)
	sharded [][2]int     // ranges of the flat buffer split across TP ranks (the rest is replicated)
	grads   *ddp.Buckets // DP gradient all-reduces launched during backward (nil when DP is 1)
	scalar  [3]float32   // loss / norm / counts reduced across ranks

	batch model.Batch // reused by every micro-step
	iter  int         // optimizer steps taken
	// skipped counts steps dropped for a non-finite gradient norm
	// (train.on_nonfinite: skip), skipsInRow the current run of them.
	skipped, skipsInRow int
	lanes               []*lane // extra in-process replicas a micro-batch is split across (SetLanes)
	laneSq              float64 // squared gradient norm, computed while summing the lanes
	// laneSqParts are laneSq's per-slice parts.
	laneSqParts []float64
	lane0       lane  // lane 0 of a lanes run: Model, with a batch of its own
	crew        *crew // the lanes' goroutines

	compute   model.Compute  // how the models run (WithCompute, or ownGEMM)
	modelOpts []model.Option // what every model of this trainer is built with besides compute and TP (recompute)
	ownGEMM   *kernels.Impl  // the GEMM the trainer made for itself; nil when given one
}

// New opens the spec's dataset, builds the model (vocab_size from the
// tokenizer when the spec leaves it 0) and its optimizer. The spec is
// validated first; every error names the spec field to fix.
func New(spec jobspec.Spec, opts ...Option) (*Trainer, error) {
	return NewReplica(spec, Layout{}, opts...)
}

// NewReplica is New for one rank of a DP × TP layout: the model holds the
// rank's tensor-parallel shard, and each step computes the rank's rows of the
// global batch and all-reduces gradients with its data-parallel group, so
// that every replica takes the same step a single process would.
func NewReplica(spec jobspec.Spec, layout Layout, opts ...Option) (*Trainer, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	layout = layout.withDefaults()
	if err := layout.validate(spec.Train.BatchSize); err != nil {
		return nil, err
	}
	o, own, err := applyOptions(opts)
	if err != nil {
		return nil, err
	}
	tr, err := newReplica(spec, layout, o)
	if err != nil {
		if own != nil {
			_ = own.Close()
		}
		return nil, err
	}
	if own != nil {
		tr.ownGEMM = own
		// The pool holds no reference to the trainer, so the trainer can
		// be collected; then its GEMM stops.
		runtime.AddCleanup(tr, func(im *kernels.Impl) { _ = im.Close() }, own)
	}
	return tr, nil
}

// newReplica is NewReplica after validation, with its options applied.
func newReplica(spec jobspec.Spec, layout Layout, o options) (*Trainer, error) {
	ds, err := data.Open(spec)
	if err != nil {
		return nil, err
	}
	if spec.Model.VocabSize == 0 {
		spec.Model.VocabSize = ds.Tokenizer().Size()
	}
	tr := &Trainer{Spec: spec, Data: ds, layout: layout, sched: Schedule(spec.Train), compute: o.compute}
	recompute, err := model.ParseRecompute(spec.Train.Recompute)
	if err != nil {
		return nil, err
	}
	tr.modelOpts = []model.Option{model.WithRecompute(recompute)} // every replica of this trainer
	opts := append([]model.Option{model.WithCompute(o.modelCompute())}, tr.modelOpts...)
	if layout.Mesh.TP > 1 {
		if tr.tp, err = tp.New(layout.TPRank, layout.Mesh.TP, layout.TP); err != nil {
			return nil, err
		}
		opts = append(opts, model.WithTensorParallel(tr.tp))
	}
	m, err := model.New(spec.Model, spec.Train.Seed, opts...)
	if err != nil {
		return nil, err
	}
	tr.Model = m
	if path := spec.Train.InitFrom; path != "" {
		if err := model.LoadWeights(path, m.Params()); err != nil {
			return nil, fmt.Errorf("train.init_from: %w", err)
		}
	}
	m.Params().BF16 = spec.Train.Precision == jobspec.PrecisionBF16
	t := spec.Train
	lo, hi := 0, len(m.Params().Data)
	if spec.Parallel.ZeRO1 && layout.Mesh.DP > 1 {
		tr.zero1 = ddp.NewZeRO1(layout.DP, hi, layout.Mesh.DP, layout.DPRank)
		lo, hi = tr.zero1.Lo, tr.zero1.Hi
	}
	if tr.opt, err = model.NewAdamWRange(m.Params(), lo, hi, t.Beta1, t.Beta2, t.Eps, t.WeightDecay); err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	for _, v := range m.Params().Views {
		if v.Shard != nil {
			tr.sharded = append(tr.sharded, [2]int{v.Offset, v.End()})
		}
	}
	if layout.Mesh.DP > 1 {
		// Reduce each range of gradients as soon as backward has finished it
		// (DDP-style overlap); the ranges come in the same order on every rank.
		tr.grads = ddp.New(layout.DP)
		m.SetGradHook(func(ctx context.Context, lo, hi int) { tr.grads.Launch(ctx, m.Params().Grad[lo:hi]) })
	}
	if err := tr.setLanes(o.lanes); err != nil {
		return nil, err
	}
	return tr, nil
}

// Layout is the replica's place in the mesh.
func (tr *Trainer) Layout() Layout { return tr.layout }

// Schedule is the learning-rate schedule a train spec asks for.
func Schedule(t jobspec.TrainSpec) model.Schedule {
	return model.Schedule{
		LR: t.LearningRate, MinLR: t.MinLR,
		WarmupIters: t.WarmupIters, DecayIters: t.LRDecayIters,
		Constant: t.DecayLR != nil && !*t.DecayLR,
	}
}

// Iter is the number of optimizer steps taken so far.
func (tr *Trainer) Iter() int { return tr.iter }

// Skipped is the number of steps whose update was dropped for a non-finite
// gradient norm (train.on_nonfinite: skip).
func (tr *Trainer) Skipped() int { return tr.skipped }

// SetIter makes the next Step use iteration it (its batch and learning rate),
// as when resuming from a checkpoint taken after it steps.
func (tr *Trainer) SetIter(it int) { tr.iter = it }

// StepStats describes one optimizer step.
type StepStats struct {
	Iter     int     // the iteration this step was (0-based)
	Loss     float64 // training loss of the global batch
	LR       float64
	GradNorm float64 // global gradient norm before clipping
	Tokens   int     // tokens the step consumed (targets for encdec, inputs otherwise)
	// Skipped: the gradient norm was not finite and train.on_nonfinite is
	// skip, so the step's update was dropped (the iteration still advances).
	Skipped bool

	// Communication, for the benchmarks: TPComm is the time spent in the
	// model's tensor-parallel all-reduces (blocking); DPWindow spans from
	// the first gradient bucket's launch to the end of the gradient
	// all-reduce, and DPExposed is the part of it after backward finished
	// (the rest was hidden behind backward).
	TPComm, DPWindow, DPExposed time.Duration
	// ForwardBackward is the micro-batches' forward and backward (TPComm
	// included); Optimizer is clipping and AdamW; ZeROGather is ZeRO-1's
	// parameter all-gather after it (a wait on peers, like DPExposed).
	ForwardBackward, Optimizer, ZeROGather time.Duration
}

// GlobalRows is the number of rows in one optimizer step's global batch.
func (tr *Trainer) GlobalRows() int { return tr.Spec.Train.BatchSize * tr.Spec.Train.GradAccum }

// Step runs one optimizer step over the whole global batch of the current
// iteration: grad_accum micro-batches of batch_size rows, gradients
// normalised by the global target count, clipping, AdamW.
func (tr *Trainer) Step(ctx context.Context) (StepStats, error) {
	if err := ctx.Err(); err != nil {
		return StepStats{}, err
	}
	start := time.Now()
	t := tr.Spec.Train
	it := tr.iter
	global := tr.GlobalRows()
	denom := float32(tr.Data.CountTargets(data.Train, int64(it), global))
	p := tr.Model.Params()
	st := StepStats{Iter: it, LR: tr.sched.At(it)}
	rowLo, rowHi := tr.layout.Mesh.Rows(tr.layout.DPRank, t.BatchSize)
	tr.tp.TakeCommTime() // from the evaluations since the last step
	for micro := 0; micro < t.GradAccum; micro++ {
		lo := micro * t.BatchSize
		if micro == t.GradAccum-1 && tr.layout.Mesh.DP > 1 {
			tr.grads.Arm() // the last backward launches the gradient buckets
		}
		if len(tr.lanes) > 0 {
			loss, tokens, err := tr.microStepLanes(ctx, int64(it), global, lo+rowLo, lo+rowHi, denom)
			if err != nil {
				tr.abandon()
				return st, fmt.Errorf("iter %d: %w", it, err)
			}
			st.Loss += loss
			st.Tokens += tokens
			continue
		}
		if err := tr.Data.Fill(&tr.batch, data.Train, int64(it), global, lo+rowLo, lo+rowHi); err != nil {
			tr.abandon()
			return st, fmt.Errorf("iter %d: batch: %w", it, err)
		}
		tr.batch.LossDenom = denom
		loss, err := tr.Model.Forward(ctx, &tr.batch, true)
		if err != nil {
			tr.abandon()
			return st, fmt.Errorf("iter %d: forward: %w", it, err)
		}
		if err := tr.Model.Backward(ctx); err != nil {
			tr.abandon()
			return st, fmt.Errorf("iter %d: backward: %w", it, err)
		}
		st.Loss += float64(loss)
		st.Tokens += tr.tokensIn(&tr.batch)
	}
	st.TPComm = tr.tp.TakeCommTime()
	st.ForwardBackward = time.Since(start)
	if err := tr.reduceGradients(ctx, &st); err != nil {
		tr.abandon()
		return st, fmt.Errorf("iter %d: %w", it, err)
	}
	optStart := time.Now()
	if t.GradClip > 0 {
		if c := t.GradClip / (st.GradNorm + 1e-6); c < 1 { // torch.nn.utils.clip_grad_norm_
			if len(tr.lanes) == 0 {
				vecmath.Scale(p.Grad, float32(c))
			} else {
				tr.inParallel(len(p.Grad), tr.Lanes(), func(_, a, b int) { vecmath.Scale(p.Grad[a:b], float32(c)) })
			}
		}
	}
	// The skip decision rests on the gradient norm alone: it is all-reduced
	// over DP and TP, so every rank decides the same and none diverges. A
	// local NaN loss without a NaN gradient cannot be skipped consistently,
	// so it stops the job as before.
	if t.OnNonFinite == jobspec.NonFiniteSkip && !isFinite(st.GradNorm) && tr.skipsInRow < jobspec.MaxNonFiniteSkips {
		p.ZeroGrad()
		tr.skipsInRow++
		tr.skipped++
		st.Skipped = true
		tr.iter++
		return st, nil
	}
	if !isFinite(st.Loss) || !isFinite(st.GradNorm) {
		p.ZeroGrad()
		hint := "lower train.learning_rate, set train.grad_clip, or set train.on_nonfinite: skip"
		if tr.skipsInRow > 0 {
			hint = fmt.Sprintf("after %d skipped steps in a row (train.on_nonfinite: skip); lower train.learning_rate or set train.grad_clip", tr.skipsInRow)
		}
		return st, fmt.Errorf("iter %d: loss %v, gradient norm %v: %w; the step was not applied — %s",
			it, st.Loss, st.GradNorm, ErrNonFiniteLoss, hint)
	}
	tr.skipsInRow = 0
	if len(tr.lanes) == 0 {
		tr.opt.Step(p, st.LR)
	} else {
		tr.opt.StepOn(p, st.LR, tr.Lanes(), tr.crew.run)
	}
	st.Optimizer = time.Since(optStart)
	if tr.zero1 != nil {
		// Each rank updated its part; everyone takes everyone's.
		gatherStart := time.Now()
		if err := tr.zero1.GatherParams(ctx, p.Data); err != nil {
			p.ZeroGrad()
			return st, fmt.Errorf("iter %d: %w", it, err)
		}
		st.ZeROGather = time.Since(gatherStart)
	}
	if len(tr.lanes) == 0 {
		p.ZeroGrad()
	} else {
		tr.inParallel(len(p.Grad), tr.Lanes(), func(_, a, b int) { clear(p.Grad[a:b]) })
	}
	tr.iter++
	return st, nil
}

// tokensIn counts the tokens a micro-batch consumed: target tokens for the
// encoder–decoder (as the reference benchmark counts), input tokens otherwise.
func (tr *Trainer) tokensIn(b *model.Batch) int {
	if tr.Spec.Model.Arch != model.ArchEncDec {
		return b.B * b.T
	}
	n := 0
	for _, y := range b.Targets {
		if y != model.IgnoreIndex {
			n++
		}
	}
	return n
}

// reduceGradients finishes the data-parallel gradient all-reduce launched
// during backward, sums the loss over the DP group, and computes the global
// gradient norm: sharded tensors summed over the TP group, replicated ones
// counted once.
func (tr *Trainer) reduceGradients(ctx context.Context, st *StepStats) error {
	backwardDone := time.Now()
	defer func() {
		if tr.layout.Mesh.DP > 1 {
			end := time.Now()
			st.DPExposed = end.Sub(backwardDone)
			if first := tr.grads.First(); !first.IsZero() {
				st.DPWindow = end.Sub(first)
			}
		}
	}()
	if err := tr.grads.Wait(); err != nil {
		return fmt.Errorf("gradient all-reduce: %w", err)
	}
	grad := tr.Model.Params().Grad
	var shardSq, total float64
	if len(tr.lanes) > 0 {
		total = tr.laneSq // a single replica: nothing sharded, nothing to reduce
	} else {
		for _, r := range tr.sharded {
			shardSq += vecmath.SumSq64(grad[r[0]:r[1]])
		}
		total = vecmath.SumSq64(grad) - shardSq
	}
	if tr.layout.Mesh.DP > 1 {
		tr.scalar[0] = float32(st.Loss)
		if err := tr.layout.DP.AllReduce(ctx, tr.scalar[:1], allreduce.Sum); err != nil {
			return fmt.Errorf("loss all-reduce: %w", err)
		}
		st.Loss = float64(tr.scalar[0])
	}
	if tr.layout.Mesh.TP > 1 {
		tr.scalar[0] = float32(shardSq)
		if err := tr.layout.TP.AllReduce(ctx, tr.scalar[:1], allreduce.Sum); err != nil {
			return fmt.Errorf("gradient norm all-reduce: %w", err)
		}
		shardSq = float64(tr.scalar[0])
	}
	st.GradNorm = math.Sqrt(total + shardSq)
	return nil
}

// abandon drops a failed step: waits for buckets in flight (so no
// collective writes into the gradients later) and zeroes the gradients.
func (tr *Trainer) abandon() {
	_ = tr.grads.Wait()
	tr.Model.Params().ZeroGrad()
	tr.zeroLaneGrads()
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
