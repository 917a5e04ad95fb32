// Package config describes a model: its architecture and sizes (Config), with
// the architectures' defaults and the checks of every field. It is a leaf, so
// rooms that only describe a model (jobspec, coord, ringctl's client
// commands) do not link the model's layers and kernels; pkg/model re-exports
// its names.
package config

import (
	"errors"
	"fmt"
)

// Arch names one of the three model families.
type Arch string

const (
	ArchGPT    Arch = "gpt"    // nanoGPT decoder: pre-LN, causal, tied lm_head
	ArchBERT   Arch = "bert"   // original BERT encoder: post-LN, bidirectional, masked-LM head
	ArchEncDec Arch = "encdec" // 2017 Transformer: post-LN encoder + decoder with cross-attention
)

// Activation names the MLP non-linearity.
type Activation string

const (
	GELU     Activation = "gelu"      // exact erf form, torch nn.GELU()
	GELUTanh Activation = "gelu_tanh" // tanh approximation (GPT-2, llm.c, BERT)
	ReLU     Activation = "relu"      // the 2017 Transformer
)

// Config describes a model. Field names follow nanoGPT's GPTConfig; fields that
// only some architectures use say so. Zero values mean "the architecture's default"
// and are filled in by WithDefaults.
type Config struct {
	Arch          Arch       `json:"arch"`
	NLayer        int        `json:"n_layer"`               // GPT/BERT blocks; encoder layers for encdec
	NDecLayer     int        `json:"n_dec_layer,omitempty"` // encdec decoder layers (default n_layer)
	NHead         int        `json:"n_head"`
	NEmbd         int        `json:"n_embd"`
	NHidden       int        `json:"n_hidden,omitempty"`   // MLP width (default 4*n_embd)
	BlockSize     int        `json:"block_size"`           // longest sequence (positions)
	VocabSize     int        `json:"vocab_size,omitempty"` // 0: taken from the dataset's tokenizer
	Dropout       float64    `json:"dropout"`
	Bias          bool       `json:"bias"`                      // biases in Linear and LayerNorm (GPT; BERT/encdec always have them)
	Activation    Activation `json:"activation,omitempty"`      // default: gelu (GPT), gelu_tanh (BERT), relu (encdec)
	LayerNormEps  float64    `json:"layer_norm_eps,omitempty"`  // default 1e-5 (GPT, encdec), 1e-12 (BERT)
	TypeVocabSize int        `json:"type_vocab_size,omitempty"` // BERT segment embeddings (default 2)
	NClasses      int        `json:"n_classes,omitempty"`       // BERT [CLS] classification head (0: none)
}

// WithDefaults returns c with every zero-valued optional field set to the
// architecture's default.
func (c Config) WithDefaults() Config {
	if c.NHidden == 0 {
		c.NHidden = 4 * c.NEmbd
	}
	switch c.Arch {
	case ArchGPT:
		if c.Activation == "" {
			c.Activation = GELU
		}
		if c.LayerNormEps == 0 {
			c.LayerNormEps = 1e-5
		}
	case ArchBERT:
		c.Bias = true
		if c.Activation == "" {
			c.Activation = GELUTanh
		}
		if c.LayerNormEps == 0 {
			c.LayerNormEps = 1e-12
		}
		if c.TypeVocabSize == 0 {
			c.TypeVocabSize = 2
		}
	case ArchEncDec:
		c.Bias = true
		if c.Activation == "" {
			c.Activation = ReLU
		}
		if c.LayerNormEps == 0 {
			c.LayerNormEps = 1e-5
		}
		if c.NDecLayer == 0 {
			c.NDecLayer = c.NLayer
		}
	}
	return c
}

// Validate reports every field that is out of range, naming the field (as it
// is spelled in a job spec) and what is expected. VocabSize may be 0 here: the
// trainer fills it from the tokenizer and validates again.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("model.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch c.Arch {
	case ArchGPT, ArchBERT, ArchEncDec:
	case "":
		bad("arch", "missing; want one of gpt, bert, encdec")
	default:
		bad("arch", "unknown model %q; want one of gpt, bert, encdec", c.Arch)
	}
	if c.NLayer < 1 {
		bad("n_layer", "must be ≥ 1, got %d", c.NLayer)
	}
	if c.NDecLayer < 0 || (c.NDecLayer > 0 && c.Arch != ArchEncDec) {
		bad("n_dec_layer", "only for arch encdec, and ≥ 1; got %d", c.NDecLayer)
	}
	if c.NHead < 1 {
		bad("n_head", "must be ≥ 1, got %d", c.NHead)
	}
	if c.NEmbd < 1 {
		bad("n_embd", "must be ≥ 1, got %d", c.NEmbd)
	} else if c.NHead >= 1 && c.NEmbd%c.NHead != 0 {
		bad("n_embd", "%d is not divisible by n_head %d; pick n_embd a multiple of n_head", c.NEmbd, c.NHead)
	}
	if c.NHidden < 0 {
		bad("n_hidden", "must be ≥ 0 (0 means 4·n_embd), got %d", c.NHidden)
	}
	if c.BlockSize < 1 {
		bad("block_size", "must be ≥ 1, got %d", c.BlockSize)
	}
	if c.VocabSize < 0 {
		bad("vocab_size", "must be ≥ 0 (0 means from the tokenizer), got %d", c.VocabSize)
	}
	if c.Dropout < 0 || c.Dropout >= 1 {
		bad("dropout", "must be in [0, 1), got %g", c.Dropout)
	}
	switch c.Activation {
	case "", GELU, GELUTanh, ReLU:
	default:
		bad("activation", "unknown %q; want gelu, gelu_tanh or relu", c.Activation)
	}
	if c.LayerNormEps < 0 {
		bad("layer_norm_eps", "must be > 0, got %g", c.LayerNormEps)
	}
	if c.TypeVocabSize < 0 || (c.TypeVocabSize > 0 && c.Arch != ArchBERT) {
		bad("type_vocab_size", "only for arch bert, and ≥ 1; got %d", c.TypeVocabSize)
	}
	if c.NClasses < 0 || (c.NClasses > 0 && c.Arch != ArchBERT) {
		bad("n_classes", "only for arch bert, and ≥ 0; got %d", c.NClasses)
	}
	return errors.Join(errs...)
}

// CheckTensorParallel reports whether the model can be sharded over tp
// tensor-parallel ranks: every rank takes n_head/tp heads and n_hidden/tp
// MLP units. The error names the spec field to change. c must have its
// defaults filled (n_hidden).
func (c Config) CheckTensorParallel(tp int) error {
	var errs []error
	switch {
	case tp < 1:
		errs = append(errs, fmt.Errorf("parallel.tp: must be ≥ 1, got %d", tp))
	default:
		if c.NHead > 0 && c.NHead%tp != 0 {
			errs = append(errs, fmt.Errorf("parallel.tp: n_head %d is not divisible by tp %d; pick tp dividing n_head", c.NHead, tp))
		}
		if c.NHidden > 0 && c.NHidden%tp != 0 {
			errs = append(errs, fmt.Errorf("parallel.tp: MLP width (model.n_hidden) %d is not divisible by tp %d; pick tp dividing it", c.NHidden, tp))
		}
	}
	return errors.Join(errs...)
}
