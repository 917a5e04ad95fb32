package model

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Recompute is how much of a block's activations Backward recomputes
// instead of keeping them from Forward (activation checkpointing): memory
// for a second forward pass of those layers. Gradients are bit-identical
// either way: the recomputation runs the same kernels on the same inputs,
// with the dropout generators rewound to where Forward drew.
type Recompute int

const (
	// RecomputeNone keeps every activation (the default).
	RecomputeNone Recompute = iota
	// RecomputeMLP keeps all but the MLP's two (N, n_hidden) tensors (its
	// c_fc output and activation, 8·N·C floats per block at n_hidden 4C),
	// recomputed from the saved ln_2 output: no communication, no random
	// draws.
	RecomputeMLP
	// RecomputeBlock keeps only each block's input (N·C floats) and one
	// block's worth of work space, re-running the whole block forward
	// (attention included, and its tensor-parallel all-reduces) before its
	// backward.
	RecomputeBlock
)

func (r Recompute) String() string {
	switch r {
	case RecomputeNone:
		return "none"
	case RecomputeMLP:
		return "mlp"
	case RecomputeBlock:
		return "block"
	}
	return fmt.Sprintf("Recompute(%d)", int(r))
}

// ParseRecompute parses "none" (or ""), "mlp" and "block".
func ParseRecompute(s string) (Recompute, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none":
		return RecomputeNone, nil
	case "mlp":
		return RecomputeMLP, nil
	case "block":
		return RecomputeBlock, nil
	}
	return RecomputeNone, fmt.Errorf("train.recompute: %q is not one of none, mlp, block", s)
}

// WithRecompute makes the model recompute r in Backward (GPT; the other
// architectures refuse anything but RecomputeNone).
func WithRecompute(r Recompute) Option {
	return func(o *options) { o.recompute = r }
}

// newRNGSource is newRNG with its source, whose state can be saved and
// restored (*src = saved) to replay the same draws.
func newRNGSource(seed int64, stream uint64) (*rand.Rand, *rand.PCG) {
	src := rand.NewPCG(uint64(seed), stream^0x9e3779b97f4a7c15)
	return rand.New(src), src
}

// rngState is the state of a model's dropout generators at one point.
type rngState struct{ shared, attn rand.PCG }
