package main

import (
	"context"
	"encoding/json"
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
		asJSON  bool
		ck      fromCheckpoint
	)
	c := &cobra.Command{
		Use:   "eval [--model DIR | --checkpoint JOB@STEP] [--set key=value ...]",
		Short: "evaluate a model saved by train, or a cluster's committed checkpoint (loss, accuracy, held-out score)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, cleanup, err := ck.dir(c.Context(), dir)
			if err != nil {
				return plainErrors(err)
			}
			defer cleanup()
			return runEval(c.Context(), c.OutOrStdout(), d, sets, threads, asJSON)
		},
	}
	ck.register(c)
	c.Flags().StringVar(&dir, "model", "out/sort-gpt", "directory written by `ringctl train`")
	c.Flags().StringArrayVar(&sets, "set", nil, "override a train/data field, e.g. --set train.eval_iters=200 (repeatable)")
	c.Flags().IntVar(&threads, "threads", 0, "cores for matrix products (0: all)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	_ = c.MarkFlagDirname("model")
	return c
}

// evalResult is eval's --json document; held_out is null for a task
// without a held-out score.
type evalResult struct {
	Model         string      `json:"model"`
	Iter          int         `json:"iter"`
	EvalBatches   int         `json:"eval_batches"`
	BatchSize     int         `json:"batch_size"`
	TrainLoss     float64     `json:"train_loss"`
	TrainAccuracy float64     `json:"train_accuracy"`
	ValLoss       float64     `json:"val_loss"`
	ValAccuracy   float64     `json:"val_accuracy"`
	HeldOut       *heldOutDoc `json:"held_out"`
}

type heldOutDoc struct {
	Correct  int     `json:"correct"`
	N        int     `json:"n"`
	Accuracy float64 `json:"accuracy"`
}

func runEval(ctx context.Context, stdout io.Writer, dir string, sets []string, threads int, asJSON bool) error {
	if threads < 0 {
		return usagef("--threads %d: want ≥ 0 (0: all cores)", threads)
	}
	compute, stopGEMM, err := fastCompute(threads, threads)
	if err != nil {
		return err
	}
	defer stopGEMM()
	tr, err := train.Restore(dir, sets, train.WithCompute(compute))
	if err != nil {
		return err
	}
	defer tr.Close()
	ev, err := tr.Evaluate(ctx)
	if err != nil {
		return err
	}
	sc, err := tr.ScoreHeldOut(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		r := evalResult{Model: dir, Iter: tr.Iter(), EvalBatches: tr.Spec.Train.EvalIters, BatchSize: tr.Spec.Train.BatchSize,
			TrainLoss: ev.TrainLoss, TrainAccuracy: ev.TrainAccuracy, ValLoss: ev.ValLoss, ValAccuracy: ev.ValAccuracy}
		if sc != nil {
			r.HeldOut = &heldOutDoc{Correct: sc.Correct, N: sc.N, Accuracy: sc.Accuracy()}
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(stdout, "%s at iter %d, %d eval batches of %d rows: train loss %.4f (accuracy %.4f), val loss %.4f (accuracy %.4f)\n",
		dir, tr.Iter(), tr.Spec.Train.EvalIters, tr.Spec.Train.BatchSize, ev.TrainLoss, ev.TrainAccuracy, ev.ValLoss, ev.ValAccuracy)
	if sc != nil {
		fmt.Fprintf(stdout, "held-out exact match: %d/%d (%.2f%%)\n", sc.Correct, sc.N, 100*sc.Accuracy())
	}
	return nil
}
