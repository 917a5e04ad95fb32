package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

func newEvalCmd() *cobra.Command {
	var (
		dir     string
		sets    []string
		threads int
	)
	c := &cobra.Command{
		Use:   "eval [--model DIR] [--set key=value ...]",
		Short: "evaluate a model saved by train (loss, accuracy, held-out score)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runEval(c.OutOrStdout(), dir, sets, threads)
		},
	}
	c.Flags().StringVar(&dir, "model", "out/sort-gpt", "directory written by `ringctl train`")
	c.Flags().StringArrayVar(&sets, "set", nil, "override a train/data field, e.g. --set train.eval_iters=200 (repeatable)")
	c.Flags().IntVar(&threads, "threads", 0, "cores for matrix products (0: all)")
	_ = c.MarkFlagDirname("model")
	return c
}

func runEval(stdout io.Writer, dir string, sets []string, threads int) error {
	if threads < 0 {
		return usagef("--threads %d: want ≥ 0 (0: all cores)", threads)
	}
	stopGEMM, err := useFastGEMM(threads)
	if err != nil {
		return err
	}
	defer stopGEMM()
	tr, err := train.Restore(dir, sets)
	if err != nil {
		return err
	}
	ev, err := tr.Evaluate()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s at iter %d, %d eval batches of %d rows: train loss %.4f (accuracy %.4f), val loss %.4f (accuracy %.4f)\n",
		dir, tr.Iter(), tr.Spec.Train.EvalIters, tr.Spec.Train.BatchSize, ev.TrainLoss, ev.TrainAccuracy, ev.ValLoss, ev.ValAccuracy)
	if sc, err := tr.ScoreHeldOut(); err != nil {
		return err
	} else if sc != nil {
		fmt.Fprintf(stdout, "held-out exact match: %d/%d (%.2f%%)\n", sc.Correct, sc.N, 100*sc.Accuracy())
	}
	return nil
}
