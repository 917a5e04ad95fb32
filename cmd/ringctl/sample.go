package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

func runSample(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	dir := fs.String("model", "out/sort-gpt", "directory written by `ringctl train`")
	prompt := fs.String("prompt", "", "GPT: text to continue (default: a newline, or the first token when the vocabulary has none); encdec: digits to reverse")
	n := fs.Int("n", 500, "GPT: tokens to generate")
	temperature := fs.Float64("temperature", 0.8, "GPT: sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 200, "GPT: sample among the k most likely tokens (0: all)")
	seed := fs.Uint64("seed", 1337, "GPT: sampling seed")
	samples := fs.Int("samples", 1, "GPT: number of samples")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: ringctl sample [-model DIR] [-prompt TEXT] [-n N] [-temperature T] [-top-k K]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	saved, err := train.Load(*dir)
	if err != nil {
		return err
	}
	ids, err := saved.Vocab.Encode(*prompt)
	if err != nil {
		return fmt.Errorf("-prompt: %w", err)
	}
	if len(ids) == 0 {
		if ids, err = saved.Vocab.Encode("\n"); err != nil {
			ids = []int32{0}
		}
	}
	switch m := saved.Model.(type) {
	case *model.GPT:
		rng := rand.New(rand.NewPCG(*seed, 0))
		for i := 0; i < *samples; i++ {
			out, err := m.Generate(ids, *n, *temperature, *topK, rng)
			if err != nil {
				return err
			}
			fmt.Println(saved.Vocab.Decode(out))
			if *samples > 1 {
				fmt.Println("---------------")
			}
		}
	case *model.EncDec:
		gen, err := train.Decoder(m)
		if err != nil {
			return err
		}
		outs, err := gen([][]int32{ids}, data.ReverseMaxLen+1)
		if err != nil {
			return err
		}
		fmt.Println(saved.Vocab.Decode(outs[0]))
	default:
		return fmt.Errorf("sampling from a %s model is not supported; sample GPT or encdec models", saved.Spec.Model.Arch)
	}
	return nil
}
