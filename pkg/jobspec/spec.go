package jobspec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

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
	TaskTokens  = "tokens"  // nanoGPT's train.bin/val.bin token files (ringctl data prepare), memory-mapped
)

// DataSpec says where the tokens come from.
type DataSpec struct {
	Task string `json:"task"`           // text | sort | add | reverse | tokens
	Path string `json:"path,omitempty"` // text: file to read; tokens: directory of train.bin, val.bin (and meta.json)
	// tokens: the tokenizer file (tokenizer.json, vocab.json beside
	// merges.txt, or .tiktoken); empty: the one in path's meta.json
	Tokenizer string  `json:"tokenizer,omitempty"`
	SHA256    string  `json:"sha256,omitempty"`    // text: expected hex sha256 of the file (empty: not checked, but recorded)
	Length    int     `json:"length,omitempty"`    // sort: sequence length (default 6)
	Digits    int     `json:"digits,omitempty"`    // sort: alphabet size (default 3); add: digits per operand (default 2)
	MaskProb  float64 `json:"mask_prob,omitempty"` // bert: fraction of positions chosen for the MLM loss (default 0.15)
}

// Values of TrainSpec.Recompute.
const (
	RecomputeNone  = "none"
	RecomputeMLP   = "mlp"
	RecomputeBlock = "block"
)

// Values of TrainSpec.Precision.
const (
	PrecisionFP32 = "fp32"
	PrecisionBF16 = "bf16"
)

// Values of TrainSpec.OnNonFinite.
const (
	NonFiniteStop = "stop" // fail the job with the step, loss and gradient norm
	NonFiniteSkip = "skip" // drop the step's update, count it and go on
)

// MaxNonFiniteSkips is how many steps in a row on_nonfinite: skip drops
// before the job stops anyway: a run that only produces NaNs is not
// recovering.
const MaxNonFiniteSkips = 20

// TrainSpec holds the optimizer, schedule and batch settings (nanoGPT train.py names).
type TrainSpec struct {
	// InitFrom is a .safetensors file of whole weights (nanoGPT's layout,
	// or Hugging Face's GPT-2 layout for GPT) the model starts from instead
	// of random values: fine-tuning. A checkpoint, when there is one, wins.
	InitFrom     string  `json:"init_from,omitempty"`
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
	// Precision is "fp32" (default) or "bf16": mixed precision, the linear
	// layers' products on bf16-rounded inputs with fp32 accumulation, fp32
	// master weights, gradients and optimizer (model.Params.BF16).
	Precision string `json:"precision,omitempty"`
	// Recompute is what backward recomputes instead of keeping from forward
	// (activation checkpointing, GPT only): "none" (default), "mlp" (each
	// block's c_fc output and activation) or "block" (all but each block's
	// input). Gradients are bit-identical; it trades a second forward of
	// those layers for their memory (model.Recompute).
	Recompute string `json:"recompute,omitempty"`
	// OnNonFinite is what a step whose loss or global gradient norm is NaN or
	// infinite does: "stop" (default) fails the job; "skip" drops that
	// step's update on every rank (the norm is all-reduced, so all ranks
	// agree), counts it and goes on, up to MaxNonFiniteSkips in a row.
	OnNonFinite string `json:"on_nonfinite,omitempty"`
	// MaxRestarts is how many generations in a row may end by losing
	// workers before the job commits a checkpoint past their resume step;
	// one more fails the job (default 3): a spec that crashes every worker
	// it is given is failed instead of handed out forever.
	MaxRestarts int `json:"max_restarts,omitempty"`
}

// ParallelSpec is the layout a cluster run asks for (ignored by a single process).
type ParallelSpec struct {
	TP         int    `json:"tp"`                 // tensor-parallel degree (default 1)
	MinWorkers int    `json:"min_workers"`        // below this the job waits (default tp)
	MaxWorkers int    `json:"max_workers"`        // 0: as many full TP groups as there are workers
	ZeRO1      bool   `json:"zero1,omitempty"`    // shard optimizer state across DP ranks
	ScaleUp    string `json:"scale_up,omitempty"` // "checkpoint" (default) or "immediate": when joiners are taken in
	// WaitTimeout ("30m", a Go duration) fails the job once it has waited
	// this long in a row for min_workers; "" or "0" waits forever.
	WaitTimeout string `json:"wait_timeout,omitempty"`
}

// WaitTimeoutDuration is parallel.wait_timeout parsed (0: wait forever).
// A validated spec always parses.
func (p ParallelSpec) WaitTimeoutDuration() time.Duration {
	d, _ := time.ParseDuration(p.WaitTimeout)
	return d
}

// CheckpointSpec says how often to checkpoint and how many to keep.
type CheckpointSpec struct {
	Interval int `json:"interval"` // optimizer steps between checkpoints (0: only at the end)
	Keep     int `json:"keep"`     // committed checkpoints retained (default 3)
	// Replicas is how many distinct workers must hold every TP shard of a
	// step durably before it is committed (default 2; capped by the
	// generation's workers). Data-parallel replicas count, once their
	// checksums agree; where there are fewer of them, workers copy their
	// shard to peers the generation names.
	Replicas int `json:"replicas"`
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
	generic = normalize(generic)
	if err := unknownField(generic, reflect.TypeFor[Spec](), ""); err != nil {
		return Spec{}, err
	}
	asJSON, err := json.Marshal(generic)
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
	if t.Precision == "" {
		t.Precision = PrecisionFP32
	}
	if t.Recompute == "" {
		t.Recompute = RecomputeNone
	}
	if t.OnNonFinite == "" {
		t.OnNonFinite = NonFiniteStop
	}
	if t.MaxRestarts == 0 {
		t.MaxRestarts = 3
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
	if s.Checkpoint.Replicas == 0 {
		s.Checkpoint.Replicas = 2
	}
	return s
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

// ModelDiff names the model fields (after defaults) whose values differ
// between a and b, as "model.n_embd: 64 there, 32 here".
func ModelDiff(a, b model.Config) []string {
	a, b = a.WithDefaults(), b.WithDefaults()
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = f.Name
		}
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if !reflect.DeepEqual(x, y) {
			out = append(out, fmt.Sprintf("model.%s: %v there, %v here", name, x, y))
		}
	}
	return out
}
