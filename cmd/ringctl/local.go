package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/progress"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// defaultLocalDir is `ringctl local`'s cluster directory, relative to the
// current directory; client commands look for a running cluster there too.
var defaultLocalDir = filepath.Join("ringmaster-data", "local")

// localFlags are local's flags.
type localFlags struct {
	spec     specFlags
	workers  int
	dir      string
	threads  int
	keep     bool
	insecure bool
}

func newLocalCmd() *cobra.Command {
	var f localFlags
	c := &cobra.Command{
		Use:   "local [--workers N] [--preset NAME | --spec FILE] [--set key=value ...] [--keep]",
		Short: "run a whole cluster on this machine (3 coordinators, N workers) and train a job on it",
		Long: "Starts 3 coordinators and N workers as processes on 127.0.0.1, submits the job\n" +
			"(default: the built-in sort job), shows its progress and result, and stops\n" +
			"everything when it ends or on Ctrl-C. The processes die with ringctl, however it\n" +
			"ends. With --keep the cluster stays up after the job for the client commands\n" +
			"(jobs, status, submit, ...), which find it without RINGMASTER_COORDINATORS,\n" +
			"until Ctrl-C or `ringctl local stop`. Every connection is mutual TLS: a cluster\n" +
			"CA and a certificate per process (and one for the operator, which the client\n" +
			"commands present) are issued into DIR/tls; --insecure runs plaintext.",
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runLocal(c.Context(), c.OutOrStdout(), f) },
	}
	f.spec.register(c)
	c.Flags().IntVar(&f.workers, "workers", 2, "worker processes (≥ 1)")
	c.Flags().StringVar(&f.dir, "dir", defaultLocalDir, "folder for the cluster's data, models and logs (emptied first)")
	c.Flags().IntVar(&f.threads, "threads", 1, "matrix-product cores per worker (≥ 1)")
	c.Flags().BoolVar(&f.keep, "keep", false, "keep the cluster running after the job ends (until Ctrl-C or `ringctl local stop`)")
	c.Flags().BoolVar(&f.insecure, "insecure", false, "run every process without TLS (anyone who reaches a port is trusted; development only)")
	_ = c.MarkFlagDirname("dir")
	c.AddCommand(newLocalStopCmd())
	return c
}

func runLocal(ctx context.Context, out io.Writer, f localFlags) error {
	if f.workers < 1 {
		return usagef("--workers %d: want ≥ 1 worker process", f.workers)
	}
	if f.threads < 1 {
		return usagef("--threads %d: want ≥ 1 core per worker", f.threads)
	}
	spec, err := f.spec.load()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	lock, err := localcluster.LockDir(dir)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	if err := lock.Clean(); err != nil {
		return err
	}
	bins, err := localcluster.FindBinaries(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		return err
	}
	logs := filepath.Join(f.dir, "logs")
	fmt.Fprintf(out, "starting 3 coordinators and %d workers on 127.0.0.1 (logs in %s)\n", f.workers, logs)
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cl, err := localcluster.Start(startCtx, localcluster.Config{Dir: dir, BinDir: bins, Workers: f.workers, Threads: f.threads, Insecure: f.insecure})
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "interrupted while starting the cluster")
		}
		return err
	}
	disc := localcluster.Discovery{PID: os.Getpid(), Dir: dir, Coordinators: cl.CoordAddrs, Dashboards: cl.HTTPAddrs, TLSDir: cl.TLSDir, Keep: f.keep, Started: time.Now()}
	for _, p := range cl.Coordinators {
		disc.CoordPIDs = append(disc.CoordPIDs, p.PID())
	}
	for _, p := range cl.Workers {
		disc.Workers = append(disc.Workers, p.PID())
	}
	if err := localcluster.Publish(disc); err != nil {
		cl.Stop()
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping the cluster")
		localcluster.Unpublish(disc)
		cl.Stop()
	}()
	client := cl.Client()
	defer client.Close()
	fmt.Fprintf(out, "coordinators: %s\n", strings.Join(cl.CoordAddrs, ","))
	fmt.Fprintf(out, "dashboard: %s\n", cl.DashboardURL())

	job, err := client.SubmitJob(ctx, spec.Marshal())
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, "interrupted before the job was submitted")
		}
		return fmt.Errorf("submit: %w", plainErrors(err))
	}
	fmt.Fprintf(out, "submitted %s (%q: %s on %s, %d iterations)\n", job.Id, spec.Name, spec.Model.Arch, spec.Data.Task, spec.Train.MaxIters)
	final, tracker, err := watchJob(ctx, out, client, job.Id, spec)
	if err != nil {
		if ctx.Err() != nil {
			return interrupted(ctx, fmt.Sprintf("interrupted at step %d (checkpoint at %d)", tracker.Step(), tracker.Checkpoint()))
		}
		return err
	}
	if final.State != pb.JobState_JOB_STATE_COMPLETED {
		return fmt.Errorf("job %s %s: %s (logs in %s)", job.Id, progress.StateName(final.State), final.Reason, logs)
	}
	if err := report(ctx, out, cl.ModelDir(job.Id)); err != nil {
		return err
	}
	if f.keep {
		fmt.Fprintf(out, "cluster still running (client commands find it; or RINGMASTER_COORDINATORS=%s) — Ctrl-C or `ringctl local stop` to stop\n",
			strings.Join(cl.CoordAddrs, ","))
		disc.Idle = true
		if err := localcluster.Publish(disc); err != nil {
			return err
		}
		<-ctx.Done() // the job is done: stopping now is the normal end, exit 0
	}
	return nil
}

type jobGetter interface {
	GetJob(ctx context.Context, id string) (*pb.GetJobResponse, error)
}

// watchJob shows a job's progress until it ends or ctx does.
func watchJob(ctx context.Context, out io.Writer, client jobGetter, id string, spec jobspec.Spec) (*pb.Job, *progress.Tracker, error) {
	tty := isTerminal(out)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	tracker := progress.New(spec.Train.MaxIters)
	var lastPrint time.Time
	var lastGen uint64
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(out)
			}
			return nil, tracker, ctx.Err()
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
				fmt.Fprint(out, "\r\033[K")
			}
			fmt.Fprintf(out, "generation %d: dp %d × tp %d on %d workers (%s), from step %d\n", g.Number, g.DpSize, g.TpSize, len(g.Ranks), g.Reason, g.ResumeStep)
		}
		line := tracker.Line(j, r.Progress, time.Now())
		switch {
		case tty:
			fmt.Fprint(out, "\r\033[K"+line)
		case time.Since(lastPrint) > 2*time.Second:
			fmt.Fprintln(out, line)
			lastPrint = time.Now()
		}
		switch j.State {
		case pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
			if tty {
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "job %s %s: %s\n", j.Id, progress.StateName(j.State), j.Reason)
			return j, tracker, nil
		}
	}
}

// report evaluates the finished model and says how to use it.
func report(ctx context.Context, out io.Writer, dir string) error {
	tr, err := train.Restore(dir, nil)
	if err != nil {
		return fmt.Errorf("the job completed but its model could not be loaded: %w", err)
	}
	defer tr.Close()
	ev, err := tr.Evaluate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "result: val loss %.4f, val accuracy %.4f", ev.ValLoss, ev.ValAccuracy)
	if sc, err := tr.ScoreHeldOut(ctx); err != nil {
		return err
	} else if sc != nil {
		fmt.Fprintf(out, ", held-out exact match %d/%d (%.2f%%)", sc.Correct, sc.N, 100*sc.Accuracy())
	}
	fmt.Fprintf(out, "\nmodel: %s  (try: ringctl sample -model %s)\n", dir, dir)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func newLocalStopCmd() *cobra.Command {
	var dir string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "stop [--dir DIR]",
		Short: "stop a running local cluster (one started with --keep, or any still running)",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usagef("--timeout %v: want > 0", timeout)
			}
			return runLocalStop(c.Context(), c.OutOrStdout(), dir, c.Flags().Changed("dir"), timeout)
		},
	}
	c.Flags().StringVar(&dir, "dir", defaultLocalDir, "the cluster's folder (default: the one started last, else "+defaultLocalDir+")")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "wait this long for the cluster to stop")
	_ = c.MarkFlagDirname("dir")
	return c
}

func runLocalStop(ctx context.Context, out io.Writer, dir string, dirGiven bool, timeout time.Duration) error {
	var disc localcluster.Discovery
	var err error
	if dirGiven {
		disc, err = localcluster.Find(dir)
	} else if disc, err = localcluster.Find(""); err != nil {
		disc, err = localcluster.Find(dir)
	}
	if err != nil {
		return err
	}
	if err := syscall.Kill(disc.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop ringctl local (PID %d): %w", disc.PID, err)
	}
	fmt.Fprintf(out, "stopping the cluster in %s (ringctl local, PID %d)\n", disc.Dir, disc.PID)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if _, held := localcluster.Held(disc.Dir); !held {
			fmt.Fprintln(out, "stopped")
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster in %s (PID %d) has not stopped after %v: %w", disc.Dir, disc.PID, timeout, errors.New("still running"))
		case <-t.C:
		}
	}
}
