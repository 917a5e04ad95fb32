package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/tokenizer"
)

// newTokenizerCmd is `ringctl tokenizer train|encode`.
func newTokenizerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "tokenizer",
		Short: "train a byte-level BPE tokenizer on text files, or encode text with one",
	}
	var vocabSize, threads int
	var out, specials, pattern string
	trainCmd := &cobra.Command{
		Use:   "train --vocab-size N -o tok.json [--special LIST] [--pattern gpt2|cl100k] FILE...",
		Short: "learn a byte-level BPE (GPT-2's or cl100k_base's pre-tokenization) from FILEs; writes a Hugging Face tokenizer.json",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, files []string) error {
			p, err := tokenizer.ParsePattern(pattern)
			if err != nil {
				return usagef("--pattern: %v", err)
			}
			return runTokenizerTrain(c.Context(), c.OutOrStdout(), files, vocabSize, out, specials, threads, p)
		},
	}
	trainCmd.Flags().IntVar(&vocabSize, "vocab-size", 0, "tokens in the result: 256 bytes + merges + specials (required)")
	trainCmd.Flags().StringVarP(&out, "output", "o", "tokenizer.json", "file to write")
	trainCmd.Flags().StringVar(&specials, "special", data.EndOfText, "comma-separated special tokens, appended after the merges (BERT: '[PAD],[CLS],[SEP],[MASK]')")
	trainCmd.Flags().IntVar(&threads, "threads", 0, "cores for pre-tokenizing (0: all)")
	trainCmd.Flags().StringVar(&pattern, "pattern", "gpt2", "pre-tokenization: gpt2 (GPT-2, r50k, p50k) or cl100k (GPT-4's cl100k_base: digits in threes, line breaks apart)")

	var tokPath string
	encodeCmd := &cobra.Command{
		Use:   "encode --tokenizer FILE [TEXT]",
		Short: "print the token ids of TEXT (or standard input), one line, and their count on stderr",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			tok, err := tokenizer.Load(tokPath)
			if err != nil {
				return err
			}
			var text string
			if len(args) == 1 {
				text = args[0]
			} else {
				b, err := io.ReadAll(c.InOrStdin())
				if err != nil {
					return err
				}
				text = string(b)
			}
			ids, _ := tok.Encode(text)
			parts := make([]string, len(ids))
			for i, id := range ids {
				parts[i] = fmt.Sprint(id)
			}
			fmt.Fprintln(c.OutOrStdout(), strings.Join(parts, " "))
			fmt.Fprintf(c.ErrOrStderr(), "%d bytes → %d tokens (%.2f bytes/token)\n", len(text), len(ids), float64(len(text))/float64(max(1, len(ids))))
			return nil
		},
	}
	encodeCmd.Flags().StringVar(&tokPath, "tokenizer", "tokenizer.json", "tokenizer.json, GPT-2 vocab.json (merges.txt beside it) or .tiktoken file")
	c.AddCommand(trainCmd, encodeCmd)
	return c
}

func runTokenizerTrain(ctx context.Context, stdout io.Writer, files []string, vocabSize int, out, specials string, threads int, pattern tokenizer.Pattern) error {
	var sp []string
	for _, s := range strings.Split(specials, ",") {
		if s = strings.TrimSpace(s); s != "" {
			sp = append(sp, s)
		}
	}
	if vocabSize < 256+len(sp) {
		return usagef("--vocab-size %d: want ≥ %d (256 byte tokens + %d specials)", vocabSize, 256+len(sp), len(sp))
	}
	if threads < 0 {
		return usagef("--threads %d: want ≥ 0 (0: all cores)", threads)
	}
	texts := make([]string, len(files))
	var n int
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("tokenizer train: %w", err)
		}
		texts[i], n = string(b), n+len(b)
	}
	start := time.Now()
	tok, err := tokenizer.Train(ctx, texts, tokenizer.TrainOptions{VocabSize: vocabSize, Specials: sp, Threads: threads, Pattern: pattern})
	if err != nil {
		return fmt.Errorf("tokenizer train: %w", err)
	}
	if err := tok.Save(out); err != nil {
		return err
	}
	ids := 0
	for _, t := range texts {
		e := tok.AppendEncode(nil, t, tokenizer.Cache{})
		ids += len(e)
	}
	fmt.Fprintf(stdout, "%s: %d tokens (%d merges, specials %q) from %d bytes in %s; %.2f bytes/token on the training text\n",
		out, tok.Size(), tok.NumMerges(), sp, n, time.Since(start).Round(time.Millisecond), float64(n)/float64(max(1, ids)))
	if tok.Size() < vocabSize {
		fmt.Fprintf(stdout, "note: stopped at %d tokens, short of %d: no pair occurs twice more\n", tok.Size(), vocabSize)
	}
	return nil
}

// newDataCmd is `ringctl data prepare`.
func newDataCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "data",
		Short: "turn text files into token files for data.task tokens",
	}
	var tokPath, out string
	var val float64
	var threads int
	prepare := &cobra.Command{
		Use:   "prepare --tokenizer FILE -o DIR [--val 0.1] FILE...",
		Short: "encode FILEs into DIR/train.bin, val.bin and meta.json (nanoGPT's layout; <|endoftext|> after each file)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, files []string) error {
			if val < 0 || val >= 1 {
				return usagef("--val %g: want a fraction in [0, 1)", val)
			}
			if threads < 0 {
				return usagef("--threads %d: want ≥ 0 (0: all cores)", threads)
			}
			tok, err := tokenizer.Load(tokPath)
			if err != nil {
				return err
			}
			start := time.Now()
			meta, err := data.Prepare(c.Context(), tok, files, out, data.PrepareOptions{ValFraction: val, Threads: threads})
			if err != nil {
				return err
			}
			el := time.Since(start)
			total := meta.TrainTokens + meta.ValTokens
			fmt.Fprintf(c.OutOrStdout(), "%s: %d train + %d val tokens (%s, vocab %d) in %s (%.0f tokens/s)\n"+
				"train on it: -set data.task=tokens -set data.path=%s\n",
				out, meta.TrainTokens, meta.ValTokens, meta.DType, meta.VocabSize, el.Round(time.Millisecond),
				float64(total)/el.Seconds(), out)
			return nil
		},
	}
	prepare.Flags().StringVar(&tokPath, "tokenizer", "tokenizer.json", "tokenizer.json, GPT-2 vocab.json (merges.txt beside it) or .tiktoken file")
	prepare.Flags().StringVarP(&out, "output", "o", "", "directory to write (required)")
	prepare.Flags().Float64Var(&val, "val", 0.1, "fraction of the tokens, the last ones, for val.bin")
	prepare.Flags().IntVar(&threads, "threads", 0, "cores for encoding (0: all)")
	_ = prepare.MarkFlagRequired("output")
	c.AddCommand(prepare)
	return c
}
