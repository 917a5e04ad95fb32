package train

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
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

	batch model.Batch // reused by every micro-step
	iter  int         // optimizer steps taken
}

// New opens the spec's dataset, builds the model (vocab_size from the
// tokenizer when the spec leaves it 0) and its optimizer. The spec is
// validated first; every error names the spec field to fix.
func New(spec jobspec.Spec) (*Trainer, error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	ds, err := data.Open(spec)
	if err != nil {
		return nil, err
	}
	if spec.Model.VocabSize == 0 {
		spec.Model.VocabSize = ds.Vocab().Size()
	}
	m, err := model.New(spec.Model, spec.Train.Seed)
	if err != nil {
		return nil, err
	}
	t := spec.Train
	opt, err := model.NewAdamW(m.Params(), t.Beta1, t.Beta2, t.Eps, t.WeightDecay)
	if err != nil {
		return nil, fmt.Errorf("optimizer: %w", err)
	}
	return &Trainer{
		Spec:  spec,
		Data:  ds,
		Model: m,
		opt:   opt,
		sched: Schedule(t),
	}, nil
}

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
	t := tr.Spec.Train
	it := tr.iter
	global := tr.GlobalRows()
	denom := float32(tr.Data.CountTargets(data.Train, int64(it), global))
	p := tr.Model.Params()
	st := StepStats{Iter: it, LR: tr.sched.At(it)}
	for micro := 0; micro < t.GradAccum; micro++ {
		lo := micro * t.BatchSize
		if err := tr.Data.Fill(&tr.batch, data.Train, int64(it), global, lo, lo+t.BatchSize); err != nil {
			p.ZeroGrad()
			return st, fmt.Errorf("iter %d: batch: %w", it, err)
		}
		tr.batch.LossDenom = denom
		loss, err := tr.Model.Forward(&tr.batch, true)
		if err != nil {
			p.ZeroGrad()
			return st, fmt.Errorf("iter %d: forward: %w", it, err)
		}
		if err := tr.Model.Backward(); err != nil {
			p.ZeroGrad()
			return st, fmt.Errorf("iter %d: backward: %w", it, err)
		}
		st.Loss += float64(loss)
		st.Tokens += tr.tokensIn(&tr.batch)
	}
	if t.GradClip > 0 {
		st.GradNorm = model.ClipGradNorm(p.Grad, t.GradClip)
	} else {
		st.GradNorm = model.GradNorm(p.Grad)
	}
	if !isFinite(st.Loss) || !isFinite(st.GradNorm) {
		p.ZeroGrad()
		return st, fmt.Errorf("iter %d: loss %v, gradient norm %v: %w; the step was not applied — lower train.learning_rate or set train.grad_clip",
			it, st.Loss, st.GradNorm, ErrNonFiniteLoss)
	}
	tr.opt.Step(p, st.LR)
	p.ZeroGrad()
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

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
