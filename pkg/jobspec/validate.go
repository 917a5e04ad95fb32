package jobspec

import (
	"errors"
	"fmt"
	"time"

	model "github.com/ringmaster-ml/ringmaster/pkg/model/config"
)

// problems collects what Validate finds, each naming its field.
type problems []error

func (pr *problems) bad(field, format string, args ...any) {
	*pr = append(*pr, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// add records err, each of its problems separately when it joins several.
func (pr *problems) add(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		*pr = append(*pr, j.Unwrap()...)
		return
	}
	*pr = append(*pr, err)
}

// Validate checks every field and reports all problems at once, section by
// section (model, data, train, parallel, checkpoint).
func (s Spec) Validate() error {
	var pr problems
	if err := s.Model.Validate(); err != nil {
		pr = append(pr, err)
	} else {
		s.validateSize(&pr)
	}
	s.validateData(&pr)
	s.validateTrain(&pr)
	s.validateParallel(&pr)
	s.validateCheckpoint(&pr)
	return errors.Join(pr...)
}

// validateData checks the data section and how it fits the model.
func (s Spec) validateData(pr *problems) {
	d := s.Data
	switch d.Task {
	case TaskText:
		if d.Path == "" {
			pr.bad("data.path", "required for task text; give the path of a UTF-8 text file")
		}
		if d.SHA256 != "" && !isHex64(d.SHA256) {
			pr.bad("data.sha256", "want 64 lowercase hex digits, got %q", d.SHA256)
		}
	case TaskSort:
		if d.Length < 2 {
			pr.bad("data.length", "sort needs length ≥ 2, got %d", d.Length)
		}
		if d.Digits < 2 || d.Digits > 10 {
			pr.bad("data.digits", "sort needs digits in [2, 10], got %d", d.Digits)
		}
	case TaskAdd:
		if d.Digits < 1 || d.Digits > 9 {
			pr.bad("data.digits", "add needs digits in [1, 9], got %d", d.Digits)
		}
	case TaskReverse:
	case TaskTokens:
		if d.Path == "" {
			pr.bad("data.path", "required for task tokens; give the directory that holds train.bin and val.bin (ringctl data prepare writes one)")
		}
		if d.SHA256 != "" {
			pr.bad("data.sha256", "only for task text; token files are checked against their meta.json")
		}
		if a := s.Model.Arch; a != "" && a != model.ArchGPT && a != model.ArchBERT && a != model.ArchEncDec {
			pr.bad("data.task", "task tokens trains model.arch gpt, bert or encdec, not %q", a)
		}
	case "":
		pr.bad("data.task", "missing; want one of text, sort, add, reverse, tokens")
	default:
		pr.bad("data.task", "unknown task %q; want one of text, sort, add, reverse, tokens", d.Task)
	}
	if d.Task != TaskText && d.Task != TaskTokens && (d.Path != "" || d.SHA256 != "") {
		pr.bad("data.path", "only for tasks text and tokens (task is %q)", d.Task)
	}
	if d.Task != TaskTokens && d.Tokenizer != "" {
		pr.bad("data.tokenizer", "only for task tokens (task is %q); text is char-level", d.Task)
	}
	encdecTask := d.Task == TaskReverse || d.Task == TaskTokens
	if d.Task != "" && s.Model.Arch != "" && ((d.Task == TaskReverse && s.Model.Arch != model.ArchEncDec) || (s.Model.Arch == model.ArchEncDec && !encdecTask)) {
		pr.bad("data.task", "model.arch encdec trains task reverse or tokens, and task reverse only encdec (arch %q, task %q)", s.Model.Arch, d.Task)
	}
	if d.MaskProb < 0 || d.MaskProb >= 1 || (d.MaskProb > 0 && s.Model.Arch != model.ArchBERT) {
		pr.bad("data.mask_prob", "only for arch bert, in (0, 1); got %g", d.MaskProb)
	}
}

// validateTrain checks the optimizer, schedule and batch.
func (s Spec) validateTrain(pr *problems) {
	t := s.Train
	if t.MaxIters < 1 {
		pr.bad("train.max_iters", "must be ≥ 1, got %d", t.MaxIters)
	}
	if t.BatchSize < 1 {
		pr.bad("train.batch_size", "must be ≥ 1, got %d", t.BatchSize)
	}
	if t.GradAccum < 1 {
		pr.bad("train.grad_accum_steps", "must be ≥ 1, got %d", t.GradAccum)
	}
	if !(t.LearningRate > 0) {
		pr.bad("train.learning_rate", "must be > 0, got %g", t.LearningRate)
	}
	if t.MinLR < 0 || t.MinLR > t.LearningRate {
		pr.bad("train.min_lr", "must be in [0, learning_rate=%g], got %g", t.LearningRate, t.MinLR)
	}
	if t.WarmupIters < 0 {
		pr.bad("train.warmup_iters", "must be ≥ 0, got %d", t.WarmupIters)
	}
	if t.DecayLR != nil && *t.DecayLR && t.LRDecayIters <= t.WarmupIters {
		pr.bad("train.lr_decay_iters", "must be > warmup_iters (%d), got %d", t.WarmupIters, t.LRDecayIters)
	}
	if t.Beta1 < 0 || t.Beta1 >= 1 {
		pr.bad("train.beta1", "must be in [0, 1), got %g", t.Beta1)
	}
	if t.Beta2 < 0 || t.Beta2 >= 1 {
		pr.bad("train.beta2", "must be in [0, 1), got %g", t.Beta2)
	}
	if !(t.Eps > 0) {
		pr.bad("train.eps", "must be > 0, got %g", t.Eps)
	}
	if t.WeightDecay < 0 {
		pr.bad("train.weight_decay", "must be ≥ 0, got %g", t.WeightDecay)
	}
	if t.GradClip < 0 {
		pr.bad("train.grad_clip", "must be ≥ 0 (0 disables clipping), got %g", t.GradClip)
	}
	if t.MaxRestarts < 0 {
		pr.bad("train.max_restarts", "must be ≥ 0 (0: the default, 3), got %d", t.MaxRestarts)
	}
	if t.OnNonFinite != "" && t.OnNonFinite != NonFiniteStop && t.OnNonFinite != NonFiniteSkip {
		pr.bad("train.on_nonfinite", "must be %q or %q, got %q", NonFiniteStop, NonFiniteSkip, t.OnNonFinite)
	}
	if t.Precision != PrecisionFP32 && t.Precision != PrecisionBF16 {
		pr.bad("train.precision", "must be %q or %q, got %q", PrecisionFP32, PrecisionBF16, t.Precision)
	}
	switch t.Recompute {
	case "", RecomputeNone:
	case RecomputeMLP, RecomputeBlock:
		if a := s.Model.Arch; a != "" && a != model.ArchGPT {
			pr.bad("train.recompute", "%s is implemented for model.arch gpt; use none for %s", t.Recompute, a)
		}
	default:
		pr.bad("train.recompute", "must be %q, %q or %q, got %q", RecomputeNone, RecomputeMLP, RecomputeBlock, t.Recompute)
	}
	if t.EvalInterval < 0 {
		pr.bad("train.eval_interval", "must be ≥ 0, got %d", t.EvalInterval)
	}
	if t.EvalIters < 1 {
		pr.bad("train.eval_iters", "must be ≥ 1, got %d", t.EvalIters)
	}
	if t.LogInterval < 1 {
		pr.bad("train.log_interval", "must be ≥ 1, got %d", t.LogInterval)
	}
	if t.HeldOut < 0 {
		pr.bad("train.held_out", "must be ≥ 0, got %d", t.HeldOut)
	}
}

// validateParallel checks the layout against the model's sizes.
func (s Spec) validateParallel(pr *problems) {
	p := s.Parallel
	if err := s.Model.CheckTensorParallel(p.TP); err != nil {
		pr.add(err)
	}
	if p.TP >= 1 {
		if p.MinWorkers < p.TP || p.MinWorkers%p.TP != 0 {
			pr.bad("parallel.min_workers", "must be a positive multiple of tp (%d), got %d", p.TP, p.MinWorkers)
		}
		if p.MaxWorkers != 0 && (p.MaxWorkers < p.MinWorkers || p.MaxWorkers%p.TP != 0) {
			pr.bad("parallel.max_workers", "must be 0 or a multiple of tp (%d) ≥ min_workers (%d), got %d", p.TP, p.MinWorkers, p.MaxWorkers)
		}
	}
	if p.TP >= 1 && s.Train.BatchSize >= 1 && p.MinWorkers > s.Train.BatchSize*p.TP {
		pr.bad("parallel.min_workers", "%d workers can never run: train.batch_size %d gives at most %d data-parallel ranks × tp %d = %d workers; lower min_workers or raise train.batch_size",
			p.MinWorkers, s.Train.BatchSize, s.Train.BatchSize, p.TP, s.Train.BatchSize*p.TP)
	}
	switch p.ScaleUp {
	case "checkpoint", "immediate":
	default:
		pr.bad("parallel.scale_up", "want checkpoint or immediate, got %q", p.ScaleUp)
	}
	if p.WaitTimeout != "" {
		if d, err := time.ParseDuration(p.WaitTimeout); err != nil || d < 0 {
			pr.bad("parallel.wait_timeout", "want a duration such as 30m or 2h (0 or empty: wait forever), got %q", p.WaitTimeout)
		}
	}
}

// validateCheckpoint checks the checkpoint section.
func (s Spec) validateCheckpoint(pr *problems) {
	if s.Checkpoint.Interval < 0 {
		pr.bad("checkpoint.interval", "must be ≥ 0, got %d", s.Checkpoint.Interval)
	}
	if s.Checkpoint.Replicas < 1 {
		pr.bad("checkpoint.replicas", "must be ≥ 1 (copies of every shard before a step is committed), got %d", s.Checkpoint.Replicas)
	}
	if s.Checkpoint.Keep < 1 {
		pr.bad("checkpoint.keep", "must be ≥ 1, got %d", s.Checkpoint.Keep)
	}
}

// Limits on a model's size that no worker can exceed: past them the
// parameter buffer cannot be allocated at all (Go panics in makeslice, or
// the kernel's OOM killer ends the worker), so such a spec is refused at
// submit instead of crashing every worker it is handed to.
const (
	maxDim    = 1 << 20 // n_embd, n_hidden, block_size, vocab_size
	maxLayers = 1 << 12 // n_layer, n_dec_layer
	// MaxParams is the largest model a spec may describe: 2^40 parameters
	// (4 TiB of float32 weights, before gradients and AdamW's moments).
	MaxParams = int64(1) << 40
)

// validateSize refuses dimensions and parameter counts no machine can hold.
// The dimension limits come first so that the parameter count below cannot
// overflow int64.
func (s Spec) validateSize(pr *problems) {
	c := s.Model.WithDefaults()
	dims := []struct {
		field  string
		v, max int
	}{
		{"model.n_embd", c.NEmbd, maxDim}, {"model.n_hidden", c.NHidden, maxDim},
		{"model.block_size", c.BlockSize, maxDim}, {"model.vocab_size", c.VocabSize, maxDim},
		{"model.n_layer", c.NLayer, maxLayers}, {"model.n_dec_layer", c.NDecLayer, maxLayers},
	}
	ok := true
	for _, d := range dims {
		if d.v > d.max {
			pr.bad(d.field, "%d is larger than any model a worker can hold (at most %d)", d.v, d.max)
			ok = false
		}
	}
	if !ok {
		return
	}
	c.VocabSize = max(c.VocabSize, 1) // 0: from the tokenizer, unknown here
	if n := paramCounts(c, 1); n > MaxParams {
		pr.bad("model", "%.3g parameters is more than the %.3g (2^40) a job may have; lower model.n_embd or model.n_layer",
			float64(n), float64(MaxParams))
	}
}
