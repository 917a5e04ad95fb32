package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/sysmem"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Options control a single-process run.
type Options struct {
	// OutDir receives the final weights, tokenizer and spec ("" = do not save).
	OutDir string
	// Out receives the human-readable progress lines (nil = discard).
	Out io.Writer
	// Logger receives structured events (nil = discard).
	Logger *slog.Logger
	// Lanes splits every micro-batch across this many in-process replicas
	// running at once (WithLanes; ≤ 1: none). Give them a single-threaded
	// GEMM in Compute.
	Lanes int
	// Compute is how the model runs (WithCompute); nil GEMM: the trainer
	// makes its own fast one.
	Compute model.Compute
}

// Result summarises a finished (or interrupted) run.
type Result struct {
	Iters        int           // optimizer steps taken
	Params       int           // number of parameters
	FinalLoss    float64       // training loss of the last step
	Evals        []Eval        // every evaluation, the last one at the end of the run
	MedianStep   time.Duration // median optimizer-step time over iterations ≥ 10 (all when fewer)
	TokensPerSec float64       // tokens per step / MedianStep
	Saved        string        // directory the model was saved to, if any
	PeakRSS      int64         // the process's peak resident memory at the end, bytes (0: unknown)
}

// Run trains spec in this process from a fresh initialisation to
// train.max_iters, evaluating every train.eval_interval steps and at the end,
// and saves the result to opts.OutDir. When ctx is cancelled it stops after
// the current step, saves what it has and returns ctx's error with the result.
func Run(ctx context.Context, spec jobspec.Spec, opts Options) (*Result, error) {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	topts := []Option{WithLanes(opts.Lanes)}
	if opts.Compute.GEMM != nil {
		topts = append(topts, WithCompute(opts.Compute))
	}
	tr, err := New(spec, topts...)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	spec = tr.Spec
	info := tr.Data.Info()
	res := &Result{Params: tr.Model.Params().NumParams()}
	fmt.Fprintf(out, "job %q: %s, %d layers, %d heads, n_embd %d, %.2fM parameters; data %s (vocab %d)\n",
		spec.Name, spec.Model.Arch, spec.Model.NLayer, spec.Model.NHead, spec.Model.NEmbd,
		float64(res.Params)/1e6, info.Task, info.VocabSize)
	log.Info("training started", "job", spec.Name, "arch", spec.Model.Arch, "params", res.Params, "task", info.Task)

	t := spec.Train
	var stepTimes []time.Duration
	tokensPerStep := 0
	evaluate := func() error {
		ev, err := tr.Evaluate(ctx)
		if err != nil {
			return err
		}
		if tr.Data.HeldOut() != nil {
			if ev.HeldOut, err = tr.ScoreHeldOut(ctx); err != nil {
				return err
			}
		}
		res.Evals = append(res.Evals, ev)
		line := fmt.Sprintf("eval %d: train loss %.4f, val loss %.4f, val accuracy %.4f", ev.Iter, ev.TrainLoss, ev.ValLoss, ev.ValAccuracy)
		if ev.HeldOut != nil {
			line += fmt.Sprintf(", held-out exact match %d/%d (%.2f%%)", ev.HeldOut.Correct, ev.HeldOut.N, 100*ev.HeldOut.Accuracy())
		}
		fmt.Fprintln(out, line)
		log.Info("eval", "iter", ev.Iter, "train_loss", ev.TrainLoss, "val_loss", ev.ValLoss, "val_acc", ev.ValAccuracy)
		return nil
	}

	var runErr error
	for tr.iter < t.MaxIters {
		if t.EvalInterval > 0 && tr.iter%t.EvalInterval == 0 && tr.iter > 0 {
			if runErr = evaluate(); runErr != nil {
				break
			}
		}
		start := time.Now()
		st, err := tr.Step(ctx)
		if err != nil {
			runErr = err
			break
		}
		dt := time.Since(start)
		stepTimes = append(stepTimes, dt)
		tokensPerStep = st.Tokens
		if st.Skipped {
			fmt.Fprintf(out, "iter %d: skipped (gradient norm %v; train.on_nonfinite: skip, %d skipped so far)\n", st.Iter, st.GradNorm, tr.Skipped())
			continue
		}
		res.FinalLoss = st.Loss
		if st.Iter%t.LogInterval == 0 || tr.iter == t.MaxIters {
			fmt.Fprintf(out, "iter %d: loss %.4f, lr %.3e, grad norm %.3f, %.1f ms/iter, %.0f tokens/s\n",
				st.Iter, st.Loss, st.LR, st.GradNorm, float64(dt.Microseconds())/1e3, float64(st.Tokens)/dt.Seconds())
		}
	}
	res.Iters = tr.iter
	res.MedianStep = median(stepTimes)
	if res.MedianStep > 0 {
		res.TokensPerSec = float64(tokensPerStep) / res.MedianStep.Seconds()
	}
	interrupted := errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded)
	if runErr != nil && !interrupted {
		return res, runErr
	}
	if !interrupted {
		if err := evaluate(); err != nil {
			return res, err
		}
	}
	line := fmt.Sprintf("done: %d iterations, median step %.1f ms, %.0f tokens/s",
		res.Iters, float64(res.MedianStep.Microseconds())/1e3, res.TokensPerSec)
	if peak, ok := sysmem.PeakRSS(); ok {
		res.PeakRSS = peak
		line += fmt.Sprintf(", peak RSS %.0f MiB", float64(peak)/(1<<20))
	}
	fmt.Fprintln(out, line)
	if opts.OutDir != "" {
		if err := Save(opts.OutDir, tr); err != nil {
			return res, err
		}
		res.Saved = opts.OutDir
		fmt.Fprintf(out, "saved %s\n", opts.OutDir)
	}
	return res, runErr
}

// median of the step times from iteration 10 on (the first ones warm caches
// and grow buffers), or of all of them for short runs.
func median(ds []time.Duration) time.Duration {
	if len(ds) > 20 {
		ds = ds[10:]
	}
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
