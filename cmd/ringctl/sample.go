package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

// sampleFlags are sample's flags.
type sampleFlags struct {
	dir         string
	prompt      string
	n           int
	temperature float64
	topK        int
	seed        uint64
	samples     int
}

func newSampleCmd() *cobra.Command {
	var f sampleFlags
	var ck fromCheckpoint
	c := &cobra.Command{
		Use:   "sample [--model DIR | --checkpoint JOB@STEP] [--prompt TEXT] [--n N] [--temperature T] [--top-k K]",
		Short: "generate from a model saved by train, or from a cluster's committed checkpoint",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, cleanup, err := ck.dir(c.Context(), f.dir)
			if err != nil {
				return plainErrors(err)
			}
			defer cleanup()
			g := f
			g.dir = d
			return runSample(c.Context(), c.OutOrStdout(), g)
		},
	}
	ck.register(c)
	c.Flags().StringVar(&f.dir, "model", "out/sort-gpt", "directory written by `ringctl train`")
	c.Flags().StringVar(&f.prompt, "prompt", "", "GPT: text to continue (default: a newline, or the first token when the vocabulary has none); encdec: digits to reverse")
	c.Flags().IntVar(&f.n, "n", 500, "GPT: tokens to generate")
	c.Flags().Float64Var(&f.temperature, "temperature", 0.8, "GPT: sampling temperature (0: greedy)")
	c.Flags().IntVar(&f.topK, "top-k", 200, "GPT: sample among the k most likely tokens (0: all)")
	c.Flags().Uint64Var(&f.seed, "seed", 1337, "GPT: sampling seed")
	c.Flags().IntVar(&f.samples, "samples", 1, "GPT: number of samples")
	_ = c.MarkFlagDirname("model")
	return c
}

func runSample(ctx context.Context, stdout io.Writer, f sampleFlags) error {
	switch {
	case f.n < 0:
		return usagef("--n %d: want ≥ 0 tokens", f.n)
	case f.temperature < 0 || math.IsNaN(f.temperature) || math.IsInf(f.temperature, 0):
		return usagef("--temperature %v: want a finite value ≥ 0 (0: greedy)", f.temperature)
	case f.topK < 0:
		return usagef("--top-k %d: want ≥ 0 (0: all tokens)", f.topK)
	case f.samples < 1:
		return usagef("--samples %d: want ≥ 1", f.samples)
	}
	compute, stopGEMM, err := fastCompute(0, 0)
	if err != nil {
		return err
	}
	defer stopGEMM()
	saved, err := train.Load(f.dir, compute)
	if err != nil {
		return err
	}
	defer saved.Model.Close()
	ids, err := saved.Vocab.Encode(f.prompt)
	if err != nil {
		return fmt.Errorf("--prompt: %w", err)
	}
	if len(ids) == 0 {
		if ids, err = saved.Vocab.Encode("\n"); err != nil {
			ids = []int32{0}
		}
	}
	switch m := saved.Model.(type) {
	case *model.GPT:
		rng := rand.New(rand.NewPCG(f.seed, 0))
		for i := 0; i < f.samples; i++ {
			out, err := m.Generate(ctx, ids, f.n, f.temperature, f.topK, rng)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, saved.Vocab.Decode(out))
			if f.samples > 1 {
				fmt.Fprintln(stdout, "---------------")
			}
		}
	case *model.EncDec:
		gen, err := train.Decoder(ctx, m)
		if err != nil {
			return err
		}
		outs, err := gen([][]int32{ids}, data.ReverseMaxLen+1)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, saved.Vocab.Decode(outs[0]))
	default:
		return fmt.Errorf("sampling from a %s model is not supported; sample GPT or encdec models", saved.Spec.Model.Arch)
	}
	return nil
}
