package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// localFlags are local's flags.
type localFlags struct {
	spec    specFlags
	workers int
	dir     string
	threads int
	keep    bool
}

func newLocalCmd() *cobra.Command {
	var f localFlags
	c := &cobra.Command{
		Use:   "local [--workers N] [--preset NAME | --spec FILE] [--set key=value ...] [--keep]",
		Short: "run a whole cluster on this machine (3 coordinators, N workers) and train a job on it",
		Long: "Starts 3 coordinators and N workers as processes on 127.0.0.1, submits the job\n" +
			"(default: the built-in sort job), shows its progress and result, and stops\n" +
			"everything when it ends or on Ctrl-C.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runLocal(c.Context(), f) },
	}
	f.spec.register(c)
	c.Flags().IntVar(&f.workers, "workers", 2, "worker processes (≥ 1)")
	c.Flags().StringVar(&f.dir, "dir", filepath.Join("ringmaster-data", "local"), "folder for the cluster's data, models and logs (emptied first)")
	c.Flags().IntVar(&f.threads, "threads", 1, "matrix-product cores per worker (≥ 1)")
	c.Flags().BoolVar(&f.keep, "keep", false, "keep the cluster running after the job ends (until Ctrl-C)")
	_ = c.MarkFlagDirname("dir")
	return c
}

func runLocal(ctx context.Context, f localFlags) error {
	if f.workers < 1 {
		return usagef("--workers %d: want ≥ 1 worker process", f.workers)
	}
	if f.threads < 1 {
		return usagef("--threads %d: want ≥ 1 core per worker", f.threads)
	}
	sf, dir, workers, threads, keep := &f.spec, &f.dir, &f.workers, &f.threads, &f.keep
	spec, err := sf.load()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	bins, err := localcluster.FindBinaries(ctx, filepath.Join(*dir, "bin"))
	if err != nil {
		return err
	}
	fmt.Printf("starting 3 coordinators and %d workers on 127.0.0.1 (logs in %s)\n", *workers, filepath.Join(*dir, "logs"))
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cl, err := localcluster.Start(startCtx, localcluster.Config{Dir: *dir, BinDir: bins, Workers: *workers, Threads: *threads})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("stopping the cluster")
		cl.Stop()
	}()
	client := cl.Client()
	defer client.Close()
	fmt.Printf("coordinators: %s\n", strings.Join(cl.CoordAddrs, ","))

	job, err := client.SubmitJob(ctx, spec.Marshal())
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	fmt.Printf("submitted %s (%q: %s on %s, %d iterations)\n", job.Id, spec.Name, spec.Model.Arch, spec.Data.Task, spec.Train.MaxIters)
	final, err := watch(ctx, client, job.Id, spec)
	if err != nil {
		return err
	}
	if final.State != pb.JobState_JOB_STATE_COMPLETED {
		return fmt.Errorf("job %s %s: %s (logs in %s)", job.Id, stateName(final.State), final.Reason, filepath.Join(*dir, "logs"))
	}
	if err := report(cl.ModelDir(job.Id)); err != nil {
		return err
	}
	if *keep {
		fmt.Printf("cluster still running; RINGMASTER_COORDINATORS=%s ringctl jobs — Ctrl-C to stop\n", strings.Join(cl.CoordAddrs, ","))
		<-ctx.Done()
	}
	return nil
}

type jobGetter interface {
	GetJob(ctx context.Context, id string) (*pb.GetJobResponse, error)
}

// watch shows a job's progress until it ends.
func watch(ctx context.Context, client jobGetter, id string, spec jobspec.Spec) (*pb.Job, error) {
	tty := isTerminal(os.Stdout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastPrint time.Time
	var lastGen uint64
	for {
		select {
		case <-ctx.Done():
			fmt.Println()
			return nil, ctx.Err()
		case <-tick.C:
		}
		r, err := client.GetJob(ctx, id)
		if err != nil {
			continue // a leader change: keep polling
		}
		j, g := r.Job, r.Generation
		if g != nil && g.Number != lastGen {
			lastGen = g.Number
			if tty {
				fmt.Print("\r\033[K")
			}
			fmt.Printf("generation %d: dp %d × tp %d on %d workers (%s), from step %d\n", g.Number, g.DpSize, g.TpSize, len(g.Ranks), g.Reason, g.ResumeStep)
		}
		line := progressLine(j, r.Progress, spec.Train.MaxIters)
		switch {
		case tty:
			fmt.Print("\r\033[K" + line)
		case time.Since(lastPrint) > 2*time.Second:
			fmt.Println(line)
			lastPrint = time.Now()
		}
		switch j.State {
		case pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
			if tty {
				fmt.Println()
			}
			fmt.Printf("job %s %s: %s\n", j.Id, stateName(j.State), j.Reason)
			return j, nil
		}
	}
}

func progressLine(j *pb.Job, progress []*pb.WorkerMessage, maxIters int) string {
	step, loss, tps := j.CommittedStep, 0.0, 0.0
	if len(progress) > 0 && progress[0] != nil && progress[0].Step > 0 {
		step, loss, tps = progress[0].Step, progress[0].Loss, progress[0].TokensPerSec
	}
	const width = 30
	filled := int(float64(width) * float64(step) / float64(max(maxIters, 1)))
	filled = min(max(filled, 0), width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	return fmt.Sprintf("%-9s [%s] step %d/%d  loss %.4f  %.0f tokens/s  checkpoint %d",
		stateName(j.State), bar, step, maxIters, loss, tps, j.CommittedStep)
}

func stateName(s pb.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

// report evaluates the finished model and says how to use it.
func report(dir string) error {
	tr, err := train.Restore(dir, nil)
	if err != nil {
		return fmt.Errorf("the job completed but its model could not be loaded: %w", err)
	}
	ev, err := tr.Evaluate()
	if err != nil {
		return err
	}
	fmt.Printf("result: val loss %.4f, val accuracy %.4f", ev.ValLoss, ev.ValAccuracy)
	if sc, err := tr.ScoreHeldOut(); err != nil {
		return err
	} else if sc != nil {
		fmt.Printf(", held-out exact match %d/%d (%.2f%%)", sc.Correct, sc.N, 100*sc.Accuracy())
	}
	fmt.Printf("\nmodel: %s  (try: ringctl sample -model %s)\n", dir, dir)
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
