package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

// Files of a saved model directory.
const (
	WeightsFile = "model.safetensors" // parameters under their PyTorch names
	VocabFile   = "vocab.json"        // the tokenizer, char-level (tokenizer.json for BPE)
	SpecFile    = "spec.json"         // the job spec, with vocab_size filled in
)

// Save writes the trainer's weights, tokenizer and spec to dir. The
// safetensors metadata also carries the spec, the tokenizer and the
// iteration, so the weights file alone is enough to sample from.
func Save(dir string, tr *Trainer) error {
	if tr.layout.Mesh.TP > 1 {
		return fmt.Errorf("save model: a tensor-parallel shard cannot be saved alone; gather it first (SaveFull)")
	}
	return save(dir, tr, tr.Model.Params())
}

// SaveFull is Save for a replica whose full (gathered) parameters are full,
// laid out as a tensor-parallel degree 1 model of the same spec.
func SaveFull(dir string, tr *Trainer, full *model.Params) error { return save(dir, tr, full) }

func save(dir string, tr *Trainer, params *model.Params) error {
	return SaveModel(dir, tr.Spec, tr.Data.Tokenizer(), tr.iter, params)
}

// SaveModel writes a whole model (tensor-parallel degree 1 layout), its
// tokenizer and spec to dir at iteration iter: what Save writes, from the
// parts (`ringctl ckpt export` has a gathered checkpoint, not a Trainer).
func SaveModel(dir string, spec jobspec.Spec, tok data.Tokenizer, iter int, params *model.Params) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	vocab, err := tok.MarshalJSON()
	if err != nil {
		return fmt.Errorf("save model: tokenizer: %w", err)
	}
	specJSON := spec.Marshal()
	meta := map[string]string{
		"format":           "pt",
		"ringmaster.spec":  string(specJSON),
		"ringmaster.vocab": string(vocab),
		"ringmaster.iter":  strconv.Itoa(iter),
	}
	if err := model.SaveFile(filepath.Join(dir, WeightsFile), params, meta); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := tok.Save(filepath.Join(dir, data.TokenizerFile(tok))); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SpecFile), specJSON, 0o644); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}

// Saved is a model loaded back from a Save directory.
type Saved struct {
	Spec  jobspec.Spec
	Vocab data.Tokenizer
	Model model.Model
	Iter  int
}

// Load reads a model saved by Save: the spec and tokenizer from the weights'
// metadata, then the weights, checked tensor by tensor against the spec's
// architecture (names and shapes). The model runs on compute (the zero
// Compute: gonum's reference GEMM; pass a kernels.Impl for speed).
func Load(dir string, compute model.Compute) (*Saved, error) {
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	specJSON, ok := f.Metadata["ringmaster.spec"]
	if !ok {
		return nil, fmt.Errorf("load model: %s has no ringmaster.spec metadata; it was not written by ringmaster", path)
	}
	spec, err := jobspec.Parse([]byte(specJSON))
	if err != nil {
		return nil, fmt.Errorf("load model: spec in %s: %w", path, err)
	}
	vocab, err := data.ParseTokenizer([]byte(f.Metadata["ringmaster.vocab"]))
	if err != nil {
		return nil, fmt.Errorf("load model: tokenizer in %s: %w", path, err)
	}
	m, err := model.New(spec.Model, spec.Train.Seed, model.WithCompute(compute))
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if err := model.Import(m.Params(), f); err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	iter, _ := strconv.Atoi(f.Metadata["ringmaster.iter"])
	return &Saved{Spec: spec, Vocab: vocab, Model: m, Iter: iter}, nil
}

// Restore returns a Trainer for a saved model: its spec (with the given
// overrides, e.g. a longer train.eval_iters) and its weights, positioned at
// the saved iteration. opts are New's.
func Restore(dir string, overrides []string, opts ...Option) (*Trainer, error) {
	saved, err := Load(dir, model.Compute{})
	if err != nil {
		return nil, err
	}
	spec, err := jobspec.Override(saved.Spec, overrides)
	if err != nil {
		return nil, err
	}
	tr, err := New(spec, opts...)
	if err != nil {
		return nil, err
	}
	if len(tr.Model.Params().Data) != len(saved.Model.Params().Data) {
		tr.Close()
		return nil, fmt.Errorf("restore %s: the overrides change the model's size; override only train.* and data.* fields", dir)
	}
	copy(tr.Model.Params().Data, saved.Model.Params().Data)
	tr.iter = saved.Iter
	return tr, nil
}
