package data

import (
	"fmt"
	"slices"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Problem is one held-out problem of a synthetic task.
//
// GPT tasks (sort, add): the model is given Prompt and must continue with
// Answer. Encoder–decoder (reverse): Prompt is the source digit string, and
// the decoder, started from [BOS], must emit Answer followed by [EOS].
type Problem struct {
	Prompt []int32
	Answer []int32
}

// Generate greedily decodes a batch of prompts, returning for each at most
// maxNew generated tokens. For GPT the tokens are the continuation of the
// prompt; for the encoder–decoder they are the decoder's output after [BOS]
// (a row may stop early at [EOS]). It is supplied by the caller, so this
// package needs nothing of the model beyond model.Batch and model.Config.
type Generate func(prompts [][]int32, maxNew int) ([][]int32, error)

// HeldOut is the fixed set of held-out problems of a synthetic task, disjoint
// from every training row, and how to score a model on it.
type HeldOut struct {
	Arch     model.Arch
	Problems []Problem
	MaxNew   int   // tokens to generate per problem
	EOS      int32 // encdec: the token that must end the answer; -1 for GPT tasks
}

// Score is the exact-match result on a held-out set.
type Score struct {
	N, Correct int
}

// Accuracy is Correct/N (0 for an empty set).
func (s Score) Accuracy() float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.N)
}

// Score runs gen over the problems in chunks of batch prompts and counts exact
// matches: GPT: the first len(Answer) generated tokens equal Answer (for sort
// and add, all answer digits right); encdec: the output up to the first [EOS]
// equals Answer and [EOS] was produced.
func (h *HeldOut) Score(gen Generate, batch int) (Score, error) {
	if batch < 1 {
		return Score{}, fmt.Errorf("data: held-out scoring batch must be ≥ 1, got %d", batch)
	}
	var sc Score
	prompts := make([][]int32, 0, batch)
	for lo := 0; lo < len(h.Problems); lo += batch {
		hi := min(lo+batch, len(h.Problems))
		prompts = prompts[:0]
		for _, p := range h.Problems[lo:hi] {
			prompts = append(prompts, p.Prompt)
		}
		outs, err := gen(prompts, h.MaxNew)
		if err != nil {
			return sc, fmt.Errorf("data: held-out problems [%d, %d): %w", lo, hi, err)
		}
		if len(outs) != hi-lo {
			return sc, fmt.Errorf("data: held-out generator returned %d outputs for %d prompts", len(outs), hi-lo)
		}
		for i, out := range outs {
			sc.N++
			if h.Correct(h.Problems[lo+i], out) {
				sc.Correct++
			}
		}
	}
	return sc, nil
}

// Correct reports whether out (generated tokens) solves p exactly.
func (h *HeldOut) Correct(p Problem, out []int32) bool {
	n := len(p.Answer)
	if h.Arch == model.ArchEncDec {
		return len(out) > n && slices.Equal(out[:n], p.Answer) && out[n] == h.EOS
	}
	return len(out) >= n && slices.Equal(out[:n], p.Answer)
}
