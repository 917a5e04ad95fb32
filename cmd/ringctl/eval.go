package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

func runEval(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	dir := fs.String("model", "out/sort-gpt", "directory written by `ringctl train`")
	var sets multiFlag
	fs.Var(&sets, "set", "override a train/data field, e.g. -set train.eval_iters=200 (repeatable)")
	threads := fs.Int("threads", 0, "cores for matrix products (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopGEMM, err := useFastGEMM(*threads)
	if err != nil {
		return err
	}
	defer stopGEMM()
	tr, err := train.Restore(*dir, sets)
	if err != nil {
		return err
	}
	ev, err := tr.Evaluate()
	if err != nil {
		return err
	}
	fmt.Printf("%s at iter %d, %d eval batches of %d rows: train loss %.4f (accuracy %.4f), val loss %.4f (accuracy %.4f)\n",
		*dir, tr.Iter(), tr.Spec.Train.EvalIters, tr.Spec.Train.BatchSize, ev.TrainLoss, ev.TrainAccuracy, ev.ValLoss, ev.ValAccuracy)
	if sc, err := tr.ScoreHeldOut(); err != nil {
		return err
	} else if sc != nil {
		fmt.Printf("held-out exact match: %d/%d (%.2f%%)\n", sc.Correct, sc.N, 100*sc.Accuracy())
	}
	return nil
}
