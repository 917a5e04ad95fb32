package jobspec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	model "github.com/ringmaster-ml/ringmaster/pkg/model/config"
)

// Spec is a training job. Every field has a JSON/YAML name; see Default for a
// complete example.
type Spec struct {
	Name       string         `json:"name"`
	Model      model.Config   `json:"model"`
	Data       DataSpec       `json:"data"`
	Train      TrainSpec      `json:"train"`
	Parallel   ParallelSpec   `json:"parallel"`
	Checkpoint CheckpointSpec `json:"checkpoint"`
}

// Dataset task names.
const (
	TaskText    = "text"    // a UTF-8 text file, char-level (nanoGPT shakespeare_char)
	TaskSort    = "sort"    // minGPT's sort demo: sort `length` digits drawn from {0..num_digits-1}
	TaskAdd     = "add"     // minGPT's adder: two `digits`-digit numbers, sum digits reversed
	TaskReverse = "reverse" // encoder–decoder: reverse a digit string of length 4..16
)

// DataSpec says where the tokens come from.
type DataSpec struct {
	Task     string  `json:"task"`                // text | sort | add | reverse
	Path     string  `json:"path,omitempty"`      // text: file to read
	SHA256   string  `json:"sha256,omitempty"`    // text: expected hex sha256 of the file (empty: not checked, but recorded)
	Length   int     `json:"length,omitempty"`    // sort: sequence length (default 6)
	Digits   int     `json:"digits,omitempty"`    // sort: alphabet size (default 3); add: digits per operand (default 2)
	MaskProb float64 `json:"mask_prob,omitempty"` // bert: fraction of positions chosen for the MLM loss (default 0.15)
}

// TrainSpec holds the optimizer, schedule and batch settings (nanoGPT train.py names).
type TrainSpec struct {
	MaxIters     int     `json:"max_iters"`
	BatchSize    int     `json:"batch_size"`                 // rows of the global batch per micro-step
	GradAccum    int     `json:"grad_accum_steps,omitempty"` // micro-batches per optimizer step (default 1)
	LearningRate float64 `json:"learning_rate"`
	MinLR        float64 `json:"min_lr"`
	WarmupIters  int     `json:"warmup_iters"`
	LRDecayIters int     `json:"lr_decay_iters"`
	DecayLR      *bool   `json:"decay_lr,omitempty"` // default true
	Beta1        float64 `json:"beta1"`
	Beta2        float64 `json:"beta2"`
	Eps          float64 `json:"eps,omitempty"` // default 1e-8
	WeightDecay  float64 `json:"weight_decay"`
	GradClip     float64 `json:"grad_clip"` // 0: no clipping
	Seed         int64   `json:"seed"`
	EvalInterval int     `json:"eval_interval"` // 0: evaluate only at the end
	EvalIters    int     `json:"eval_iters"`    // batches per split in a loss estimate
	LogInterval  int     `json:"log_interval"`
	EvalSeed     int64   `json:"eval_seed,omitempty"` // held-out sets and eval batches (default 4242)
	HeldOut      int     `json:"held_out,omitempty"`  // synthetic tasks: held-out problems scored at the end
}

// ParallelSpec is the layout a cluster run asks for (ignored by a single process).
type ParallelSpec struct {
	TP         int    `json:"tp"`                 // tensor-parallel degree (default 1)
	MinWorkers int    `json:"min_workers"`        // below this the job waits (default tp)
	MaxWorkers int    `json:"max_workers"`        // 0: as many full TP groups as there are workers
	ZeRO1      bool   `json:"zero1,omitempty"`    // shard optimizer state across DP ranks
	ScaleUp    string `json:"scale_up,omitempty"` // "checkpoint" (default) or "immediate": when joiners are taken in
}

// CheckpointSpec says how often to checkpoint and how many to keep.
type CheckpointSpec struct {
	Interval int `json:"interval"` // optimizer steps between checkpoints (0: only at the end)
	Keep     int `json:"keep"`     // committed checkpoints retained (default 3)
}

// Parse reads a spec from YAML or JSON (JSON is YAML), fills defaults and
// validates it. Unknown fields are errors.
func Parse(doc []byte) (Spec, error) {
	var generic any
	if err := yaml.Unmarshal(doc, &generic); err != nil {
		return Spec{}, fmt.Errorf("job spec is not valid YAML/JSON: %w", err)
	}
	if generic == nil {
		return Spec{}, errors.New("job spec is empty; see `ringctl train --print-spec` for an example")
	}
	asJSON, err := json.Marshal(normalize(generic))
	if err != nil {
		return Spec{}, fmt.Errorf("job spec: %w", err)
	}
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(asJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Spec{}, fmt.Errorf("job spec: %s", explainDecodeError(err))
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// ParseFile reads and parses a spec file.
func ParseFile(path string) (Spec, error) {
	doc, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("read job spec: %w", err)
	}
	s, err := Parse(doc)
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Marshal renders the spec as indented JSON (the canonical form stored by the coordinator).
func (s Spec) Marshal() []byte {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err) // Spec holds only plain values
	}
	return b
}

// ModelHash is the hex sha256 of the model config's canonical JSON
// (defaults filled): what a worker presents on registration so that the
// coordinator refuses one built for another model.
func (s Spec) ModelHash() string {
	b, err := json.Marshal(s.Model.WithDefaults())
	if err != nil {
		panic(err) // Config holds only plain values
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// normalize turns YAML's map[string]any / map[any]any into JSON-encodable maps.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	}
	return v
}

// explainDecodeError rewrites encoding/json's messages to name the spec field.
func explainDecodeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: got a %s, want %s", te.Field, te.Value, te.Type)
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ") +
			"; check its spelling against `ringctl train --print-spec`"
	}
	return strings.TrimPrefix(msg, "json: ")
}

// WithDefaults fills zero-valued optional fields.
func (s Spec) WithDefaults() Spec {
	s.Model = s.Model.WithDefaults()
	if s.Data.Task == TaskSort {
		if s.Data.Length == 0 {
			s.Data.Length = 6
		}
		if s.Data.Digits == 0 {
			s.Data.Digits = 3
		}
	}
	if s.Data.Task == TaskAdd && s.Data.Digits == 0 {
		s.Data.Digits = 2
	}
	if s.Model.Arch == model.ArchBERT && s.Data.MaskProb == 0 {
		s.Data.MaskProb = 0.15
	}
	t := &s.Train
	if t.GradAccum == 0 {
		t.GradAccum = 1
	}
	if t.DecayLR == nil {
		yes := true
		t.DecayLR = &yes
	}
	if t.Eps == 0 {
		t.Eps = 1e-8
	}
	if t.EvalSeed == 0 {
		t.EvalSeed = 4242
	}
	if t.LogInterval == 0 {
		t.LogInterval = 10
	}
	if t.LRDecayIters == 0 {
		t.LRDecayIters = max(t.MaxIters, t.WarmupIters+1)
	}
	if s.Parallel.TP == 0 {
		s.Parallel.TP = 1
	}
	if s.Parallel.MinWorkers == 0 {
		s.Parallel.MinWorkers = s.Parallel.TP
	}
	if s.Parallel.ScaleUp == "" {
		s.Parallel.ScaleUp = "checkpoint"
	}
	if s.Checkpoint.Keep == 0 {
		s.Checkpoint.Keep = 3
	}
	return s
}

// Validate checks every field and reports all problems at once.
func (s Spec) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if err := s.Model.Validate(); err != nil {
		errs = append(errs, err)
	}
	d := s.Data
	switch d.Task {
	case TaskText:
		if d.Path == "" {
			bad("data.path", "required for task text; give the path of a UTF-8 text file")
		}
		if d.SHA256 != "" && !isHex64(d.SHA256) {
			bad("data.sha256", "want 64 lowercase hex digits, got %q", d.SHA256)
		}
	case TaskSort:
		if d.Length < 2 {
			bad("data.length", "sort needs length ≥ 2, got %d", d.Length)
		}
		if d.Digits < 2 || d.Digits > 10 {
			bad("data.digits", "sort needs digits in [2, 10], got %d", d.Digits)
		}
	case TaskAdd:
		if d.Digits < 1 || d.Digits > 9 {
			bad("data.digits", "add needs digits in [1, 9], got %d", d.Digits)
		}
	case TaskReverse:
	case "":
		bad("data.task", "missing; want one of text, sort, add, reverse")
	default:
		bad("data.task", "unknown task %q; want one of text, sort, add, reverse", d.Task)
	}
	if d.Task != TaskText && (d.Path != "" || d.SHA256 != "") {
		bad("data.path", "only for task text (task is %q)", d.Task)
	}
	if (d.Task == TaskReverse) != (s.Model.Arch == model.ArchEncDec) && d.Task != "" && s.Model.Arch != "" {
		bad("data.task", "task reverse goes with model.arch encdec and only with it (arch %q, task %q)", s.Model.Arch, d.Task)
	}
	if d.MaskProb < 0 || d.MaskProb >= 1 || (d.MaskProb > 0 && s.Model.Arch != model.ArchBERT) {
		bad("data.mask_prob", "only for arch bert, in (0, 1); got %g", d.MaskProb)
	}
	t := s.Train
	if t.MaxIters < 1 {
		bad("train.max_iters", "must be ≥ 1, got %d", t.MaxIters)
	}
	if t.BatchSize < 1 {
		bad("train.batch_size", "must be ≥ 1, got %d", t.BatchSize)
	}
	if t.GradAccum < 1 {
		bad("train.grad_accum_steps", "must be ≥ 1, got %d", t.GradAccum)
	}
	if !(t.LearningRate > 0) {
		bad("train.learning_rate", "must be > 0, got %g", t.LearningRate)
	}
	if t.MinLR < 0 || t.MinLR > t.LearningRate {
		bad("train.min_lr", "must be in [0, learning_rate=%g], got %g", t.LearningRate, t.MinLR)
	}
	if t.WarmupIters < 0 {
		bad("train.warmup_iters", "must be ≥ 0, got %d", t.WarmupIters)
	}
	if *t.DecayLR && t.LRDecayIters <= t.WarmupIters {
		bad("train.lr_decay_iters", "must be > warmup_iters (%d), got %d", t.WarmupIters, t.LRDecayIters)
	}
	if t.Beta1 < 0 || t.Beta1 >= 1 {
		bad("train.beta1", "must be in [0, 1), got %g", t.Beta1)
	}
	if t.Beta2 < 0 || t.Beta2 >= 1 {
		bad("train.beta2", "must be in [0, 1), got %g", t.Beta2)
	}
	if !(t.Eps > 0) {
		bad("train.eps", "must be > 0, got %g", t.Eps)
	}
	if t.WeightDecay < 0 {
		bad("train.weight_decay", "must be ≥ 0, got %g", t.WeightDecay)
	}
	if t.GradClip < 0 {
		bad("train.grad_clip", "must be ≥ 0 (0 disables clipping), got %g", t.GradClip)
	}
	if t.EvalInterval < 0 {
		bad("train.eval_interval", "must be ≥ 0, got %d", t.EvalInterval)
	}
	if t.EvalIters < 1 {
		bad("train.eval_iters", "must be ≥ 1, got %d", t.EvalIters)
	}
	if t.LogInterval < 1 {
		bad("train.log_interval", "must be ≥ 1, got %d", t.LogInterval)
	}
	if t.HeldOut < 0 {
		bad("train.held_out", "must be ≥ 0, got %d", t.HeldOut)
	}
	p := s.Parallel
	if p.TP < 1 {
		bad("parallel.tp", "must be ≥ 1, got %d", p.TP)
	} else {
		if s.Model.NHead > 0 && s.Model.NHead%p.TP != 0 {
			bad("parallel.tp", "n_head %d is not divisible by tp %d; pick tp dividing n_head", s.Model.NHead, p.TP)
		}
		if hidden := s.Model.NHidden; hidden > 0 && hidden%p.TP != 0 {
			bad("parallel.tp", "MLP width %d is not divisible by tp %d", hidden, p.TP)
		}
		if p.MinWorkers < p.TP || p.MinWorkers%p.TP != 0 {
			bad("parallel.min_workers", "must be a positive multiple of tp (%d), got %d", p.TP, p.MinWorkers)
		}
		if p.MaxWorkers != 0 && (p.MaxWorkers < p.MinWorkers || p.MaxWorkers%p.TP != 0) {
			bad("parallel.max_workers", "must be 0 or a multiple of tp (%d) ≥ min_workers (%d), got %d", p.TP, p.MinWorkers, p.MaxWorkers)
		}
	}
	switch p.ScaleUp {
	case "checkpoint", "immediate":
	default:
		bad("parallel.scale_up", "want checkpoint or immediate, got %q", p.ScaleUp)
	}
	if s.Checkpoint.Interval < 0 {
		bad("checkpoint.interval", "must be ≥ 0, got %d", s.Checkpoint.Interval)
	}
	if s.Checkpoint.Keep < 1 {
		bad("checkpoint.keep", "must be ≥ 1, got %d", s.Checkpoint.Keep)
	}
	return errors.Join(errs...)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
