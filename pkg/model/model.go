package model

import (
	"context"
	"errors"
	"fmt"
)

// Model is what every architecture implements. A training micro-step is
// Forward(b, true) then Backward(); gradients accumulate into Params().Grad
// until the caller zeroes them (gradient accumulation = several micro-steps
// before one optimizer step).
//
// Activation buffers are sized from (config, B, T) on the first Forward and
// reused; they grow only when a larger batch arrives. Forward and Backward
// allocate nothing in steady state.
type Model interface {
	Config() Config
	Params() *Params
	// Forward runs the model on b and returns the loss (0 when b has no
	// targets). train enables dropout. Invalid batches are rejected with an
	// error naming the field.
	Forward(ctx context.Context, b *Batch, train bool) (loss float32, err error)
	// Backward back-propagates d(loss) = 1 from the last Forward and
	// accumulates into Params().Grad. It panics if the last Forward had no
	// targets or failed. An error comes only from a tensor-parallel
	// all-reduce; Params().Grad is then partly updated and must be zeroed.
	Backward(ctx context.Context) error
	// SetGradHook makes Backward call fn(lo, hi) each time the range
	// [lo,hi) of Params().Grad holds its final value for this Backward, on
	// the goroutine running Backward (for overlapping a data-parallel
	// all-reduce with the rest of Backward; fn must not write Grad[lo:hi)).
	// The ranges come in decreasing order and cover the whole buffer exactly
	// once per Backward. nil removes the hook.
	SetGradHook(fn func(ctx context.Context, lo, hi int))
	// Logits of the last Forward: (B,T,V) for GPT; other architectures
	// document theirs.
	Logits() []float32
	// Close stops any goroutines the model owns (a GPT's layer pool); the
	// model keeps working on the calling goroutine alone.
	Close()
}

// New builds the model cfg.Arch names with parameters initialised from seed.
// Defaults are filled in and the config validated first; VocabSize must be set.
// WithTensorParallel builds one tensor-parallel rank's shard instead.
func New(cfg Config, seed int64, opts ...Option) (Model, error) {
	switch cfg.WithDefaults().Arch {
	case ArchGPT:
		return NewGPT(cfg, seed, opts...)
	case ArchBERT:
		return NewBERT(cfg, seed, opts...)
	case ArchEncDec:
		return NewEncDec(cfg, seed, opts...)
	default:
		if err := cfg.WithDefaults().Validate(); err != nil {
			return nil, err // names the arch field and the choices
		}
		return nil, fmt.Errorf("model.arch: %q is not implemented yet in this build", cfg.Arch)
	}
}

// buildable fills cfg's defaults and checks it, once, for building an arch
// model: the fields (Config.Validate, shared with jobspec) and a vocabulary.
func buildable(cfg Config, arch Arch) (Config, error) {
	cfg = cfg.WithDefaults()
	if cfg.Arch != arch {
		return cfg, fmt.Errorf("model.arch: %q, but this constructor builds %q; use model.New to build any", cfg.Arch, arch)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if cfg.VocabSize < 1 {
		return cfg, errors.New("model.vocab_size: must be ≥ 1 to build a model; set it from the tokenizer")
	}
	return cfg, nil
}

// ValidateIDs checks that ids has B·T entries in [0,vocab) (or IgnoreIndex
// when allowIgnore), naming field in the error.
func ValidateIDs(field string, ids []int32, rows, cols, vocab int, allowIgnore bool) error {
	if len(ids) != rows*cols {
		return fmt.Errorf("batch.%s: has %d ids, want %d (%d rows × %d)", field, len(ids), rows*cols, rows, cols)
	}
	for i, id := range ids {
		if allowIgnore && id == IgnoreIndex {
			continue
		}
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("batch.%s[%d,%d]: id %d out of range [0,%d)", field, i/max(cols, 1), i%max(cols, 1), id, vocab)
		}
	}
	return nil
}

// ValidateMask checks that a (rows,cols) 0/1 mask is nil or has the right length.
func ValidateMask(field string, m []uint8, rows, cols int) error {
	if m != nil && len(m) != rows*cols {
		return fmt.Errorf("batch.%s: has %d entries, want %d (%d rows × %d) or nil", field, len(m), rows*cols, rows, cols)
	}
	return nil
}

// validateShape checks B and T against the block size.
func validateShape(b *Batch, blockSize int) error {
	if b == nil {
		return errors.New("batch: nil")
	}
	if b.B < 1 {
		return fmt.Errorf("batch.B: must be ≥ 1, got %d", b.B)
	}
	if b.T < 1 || b.T > blockSize {
		return fmt.Errorf("batch.T: %d out of range [1,%d] (block_size)", b.T, blockSize)
	}
	if b.LossDenom < 0 {
		return fmt.Errorf("batch.LossDenom: must be ≥ 0 (0 = mean over targets), got %g", b.LossDenom)
	}
	return nil
}

// grow returns buf if it holds n elements, else a new slice of n.
func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]float32, n)
}
