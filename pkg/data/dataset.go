package data

import (
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Split selects the training or the validation/held-out side of a dataset.
// Text: the first 90 % / last 10 % of the token ids (nanoGPT). Synthetic
// tasks: training problems / held-out (test) problems, which never overlap.
type Split int

const (
	Train Split = iota
	Val
)

func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Val:
		return "val"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// DefaultHeldOut is the number of held-out problems scored when
// train.held_out is 0 (capped by the size of the task's test set).
const DefaultHeldOut = 1000

// Info describes an opened dataset.
type Info struct {
	Task      string     // jobspec task name
	Arch      model.Arch // the architecture the batches are laid out for
	VocabSize int        // tokenizer size (model.vocab_size when that is 0)
	// T is the length of Tokens/Targets: fixed for text, sort and add; for
	// reverse the longest possible (MaxLen+1), a batch may use less.
	T int
	S int // reverse: longest possible source (encoder) length; 0 otherwise

	SHA256      string // text: hex sha256 of the file's bytes
	TrainTokens int    // text: tokens in the train split
	ValTokens   int    // text: tokens in the val split
	HeldOut     int    // synthetic tasks: problems in HeldOut()
}

// task is one kind of dataset: how it lays out a global batch and one row.
type task interface {
	// dims returns the (T, S) of the global batch named by k.
	dims(k batchKey, globalRows int) (T, S int)
	// fields says which optional Batch slices the task fills.
	fields() fields
	// row writes row r (local index) of b, whose T and S are already set,
	// drawing from rng, the row's own generator (passed by value: no allocation).
	row(b *model.Batch, r int, rng rowRNG, split Split)
	// count returns the non-ignored targets of the global batch named by k.
	count(k batchKey, globalRows int) int
}

type fields struct{ tokenTypes, keyValid, src bool }

// batchKey names one global batch.
type batchKey struct {
	seed   int64
	stream uint64
	split  Split
	step   int64
}

func (k batchKey) rng(row int) rowRNG { return newRowRNG(k.seed, k.stream, k.split, k.step, row) }

// Dataset is an opened dataset: its tokenizer, its deterministic batch
// sampler and, for synthetic tasks, its held-out problems. It is immutable
// after Open and safe for concurrent use (each Fill writes only its Batch).
type Dataset struct {
	info     Info
	vocab    Tokenizer
	checkIDs bool // token files: every filled id is checked against the vocabulary
	task     task
	seed     int64
	evalSeed int64
	heldOut  *HeldOut
}

// Open builds the dataset a job spec asks for: spec.Data says which, spec.Model
// gives the architecture and block_size, spec.Train.Seed keys training
// batches and spec.Train.EvalSeed keys eval batches and held-out sets.
// Defaults are filled as jobspec.Spec.WithDefaults does. Errors name the spec
// field to fix.
func Open(spec jobspec.Spec) (*Dataset, error) {
	spec = spec.WithDefaults()
	d := &Dataset{seed: spec.Train.Seed, evalSeed: spec.Train.EvalSeed}
	nHeld := spec.Train.HeldOut
	if nHeld == 0 {
		nHeld = DefaultHeldOut
	}
	arch, bs := spec.Model.Arch, spec.Model.BlockSize
	needArch := func(want ...model.Arch) error {
		for _, a := range want {
			if arch == a {
				return nil
			}
		}
		return fmt.Errorf("data.task: task %q needs model.arch %v, got %q", spec.Data.Task, want, arch)
	}
	var err error
	switch spec.Data.Task {
	case jobspec.TaskText:
		if err = needArch(model.ArchGPT, model.ArchBERT); err != nil {
			return nil, err
		}
		err = d.openText(spec.Data, arch, bs)
	case jobspec.TaskSort:
		if err = needArch(model.ArchGPT); err != nil {
			return nil, err
		}
		err = d.openSort(spec.Data, bs, nHeld)
	case jobspec.TaskAdd:
		if err = needArch(model.ArchGPT); err != nil {
			return nil, err
		}
		err = d.openAdd(spec.Data, bs, nHeld)
	case jobspec.TaskReverse:
		if err = needArch(model.ArchEncDec); err != nil {
			return nil, err
		}
		err = d.openReverse(bs, nHeld)
	case jobspec.TaskTokens:
		if err = needArch(model.ArchGPT, model.ArchBERT, model.ArchEncDec); err != nil {
			return nil, err
		}
		err = d.openTokens(spec.Data, arch, bs)
	case "":
		return nil, fmt.Errorf("data.task: missing; want one of text, sort, add, reverse, tokens")
	default:
		return nil, fmt.Errorf("data.task: unknown task %q; want one of text, sort, add, reverse, tokens", spec.Data.Task)
	}
	if err != nil {
		return nil, err
	}
	d.info.Task, d.info.Arch, d.info.VocabSize = spec.Data.Task, arch, d.vocab.Size()
	if d.heldOut != nil {
		d.info.HeldOut = len(d.heldOut.Problems)
	}
	if v := spec.Model.VocabSize; v != 0 && v < d.vocab.Size() {
		return nil, fmt.Errorf("model.vocab_size: %d is smaller than the tokenizer's %d tokens; set it to 0 (take it from the tokenizer) or ≥ %d",
			v, d.vocab.Size(), d.vocab.Size())
	}
	return d, nil
}

// Info describes the dataset.
func (d *Dataset) Info() Info { return d.info }

// Tokenizer is the dataset's tokenizer.
func (d *Dataset) Tokenizer() Tokenizer { return d.vocab }

// HeldOut returns the held-out problems of a synthetic task (nil for text).
func (d *Dataset) HeldOut() *HeldOut { return d.heldOut }

// Fill writes rows [lo, hi) of the training-stream global batch of globalRows
// rows at step into b: b.B = hi-lo, b.T (and b.S) are the global batch's. The
// data is a pure function of (dataset, train.seed, split, step, row), whatever
// the partition of rows. Fill reuses b's slices when their capacity suffices,
// sets slices the architecture does not use to nil, and sets LossDenom to 0.
func (d *Dataset) Fill(b *model.Batch, split Split, step int64, globalRows, lo, hi int) error {
	return d.fill(b, batchKey{d.seed, streamTrain, split, step}, globalRows, lo, hi)
}

// CountTargets is the number of non-ignored targets in the whole training
// global batch at step (for data-parallel loss normalisation).
func (d *Dataset) CountTargets(split Split, step int64, globalRows int) int {
	return d.task.count(batchKey{d.seed, streamTrain, split, step}, globalRows)
}

// FillEval is Fill for the k-th fixed evaluation batch of a split, keyed by
// train.eval_seed instead of train.seed: every loss estimate of a run (and of
// runs with other training seeds) sees the same eval batches.
func (d *Dataset) FillEval(b *model.Batch, split Split, k int, globalRows, lo, hi int) error {
	return d.fill(b, batchKey{d.evalSeed, streamEval, split, int64(k)}, globalRows, lo, hi)
}

// CountEvalTargets is CountTargets for the k-th evaluation batch.
func (d *Dataset) CountEvalTargets(split Split, k int, globalRows int) int {
	return d.task.count(batchKey{d.evalSeed, streamEval, split, int64(k)}, globalRows)
}

func (d *Dataset) fill(b *model.Batch, k batchKey, globalRows, lo, hi int) error {
	if k.split != Train && k.split != Val {
		return fmt.Errorf("data: unknown split %d; want Train or Val", int(k.split))
	}
	if globalRows < 1 || lo < 0 || lo > hi || hi > globalRows {
		return fmt.Errorf("data: rows [%d, %d) of a %d-row global batch is not a valid range", lo, hi, globalRows)
	}
	T, S := d.task.dims(k, globalRows)
	n := hi - lo
	f := d.task.fields()
	b.B, b.T, b.S = n, T, S
	b.Tokens = resize(b.Tokens, n*T)
	b.Targets = resize(b.Targets, n*T)
	tt, kv, src, sv := b.TokenTypes, b.KeyValid, b.Src, b.SrcValid
	b.TokenTypes, b.KeyValid, b.Src, b.SrcValid, b.ClassLabels = nil, nil, nil, nil, nil
	if f.tokenTypes {
		b.TokenTypes = resize(tt, n*T)
		clear(b.TokenTypes)
	}
	if f.keyValid {
		b.KeyValid = resize(kv, n*T)
	}
	if f.src {
		b.Src = resize(src, n*S)
		b.SrcValid = resize(sv, n*S)
	}
	b.LossDenom = 0
	for r := lo; r < hi; r++ {
		rng := k.rng(r)
		d.task.row(b, r-lo, rng, k.split)
	}
	if d.checkIDs {
		return checkIDs(b, d.vocab.Size())
	}
	return nil
}

// checkIDs refuses ids a token file should not hold: ids from another
// tokenizer would index past the embedding.
func checkIDs(b *model.Batch, vocab int) error {
	for _, s := range []struct {
		ids   []int32
		width int
	}{{b.Tokens, b.T}, {b.Targets, b.T}, {b.Src, b.S}} {
		for i, id := range s.ids {
			if (id < 0 && id != model.IgnoreIndex) || int(id) >= vocab {
				return fmt.Errorf("data.path: token id %d at row %d is outside the tokenizer's %d ids; the token files were not made with this tokenizer (set data.tokenizer, or rerun ringctl data prepare)",
					id, i/s.width, vocab)
			}
		}
	}
	return nil
}

// resize returns s with length n, reusing its array when it is large enough.
func resize[E int32 | uint8](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}
