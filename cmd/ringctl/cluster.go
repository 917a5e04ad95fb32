package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// clusterCommands are the commands that talk to a coordinator group. Each
// is a thin wrapper over coord.Client, which follows leader redirects.
func clusterCommands() map[string]command {
	return map[string]command{
		"submit":       {"submit a job spec (file, or --preset) to the coordinators", plainErrors(runSubmit)},
		"status":       {"show a job (with its rank table), or the coordinator group", plainErrors(runStatus)},
		"jobs":         {"list jobs", plainErrors(runJobs)},
		"workers":      {"list workers", plainErrors(runWorkers)},
		"cancel":       {"cancel a job", plainErrors(runCancel)},
		"coordinators": {"list coordinator members and their raft state; --remove ID drops a dead one", plainErrors(runCoordinators)},
	}
}

// plainErrors renders gRPC statuses as "Code: message" instead of
// "rpc error: code = Code desc = message".
func plainErrors(run func(ctx context.Context, args []string) error) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		err := run(ctx, args)
		if st, ok := status.FromError(err); ok && err != nil {
			return fmt.Errorf("%s: %s", st.Code(), st.Message())
		}
		return err
	}
}

// clusterFlags are shared by every cluster command.
type clusterFlags struct {
	addrs   string
	timeout time.Duration
}

func newClusterFlags(name string) (*flag.FlagSet, *clusterFlags) {
	fs := flag.NewFlagSet("ringctl "+name, flag.ContinueOnError)
	cf := &clusterFlags{}
	def := os.Getenv("RINGMASTER_COORDINATORS")
	if def == "" {
		def = "127.0.0.1:7100"
	}
	fs.StringVar(&cf.addrs, "coordinators", def, "comma-separated coordinator gRPC addresses (env RINGMASTER_COORDINATORS); any one will do")
	fs.DurationVar(&cf.timeout, "timeout", 15*time.Second, "give up after this long (retrying through leader changes)")
	return fs, cf
}

func (cf *clusterFlags) client(ctx context.Context) (*coord.Client, context.Context, context.CancelFunc) {
	var addrs []string
	for _, a := range strings.Split(cf.addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	return coord.NewClient(addrs), ctx, cancel
}

func runSubmit(ctx context.Context, args []string) error {
	fs, cf := newClusterFlags("submit")
	preset := fs.String("preset", "", "submit a built-in preset instead of a file: "+strings.Join(jobspec.PresetNames(), ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	var doc []byte
	switch {
	case *preset != "" && fs.NArg() == 0:
		s, err := jobspec.Preset(*preset)
		if err != nil {
			return err
		}
		doc = s.Marshal()
	case *preset == "" && fs.NArg() == 1:
		b, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
		doc = b
	default:
		return errors.New("usage: ringctl submit [flags] SPEC.yaml | --preset NAME")
	}
	cl, ctx, cancel := cf.client(ctx)
	defer cancel()
	defer cl.Close()
	j, err := cl.SubmitJob(ctx, doc)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "%s %s\n", j.Id, coord.StateName(j.State))
	return nil
}

func runStatus(ctx context.Context, args []string) error {
	fs, cf := newClusterFlags("status")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl, ctx, cancel := cf.client(ctx)
	defer cancel()
	defer cl.Close()
	if fs.NArg() == 0 {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "answered by %s (%s), leader %s at %s, term %d, applied %d\n",
			st.NodeId, st.RaftState, orNone(st.LeaderId), orNone(st.LeaderGrpcAddress), st.Term, st.AppliedIndex)
		return nil
	}
	r, err := cl.GetJob(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	j := r.Job
	fmt.Fprintf(os.Stdout, "job %s: %s", j.Id, coord.StateName(j.State))
	if j.Reason != "" {
		fmt.Fprintf(os.Stdout, " (%s)", j.Reason)
	}
	fmt.Fprintf(os.Stdout, "\ncommitted step %d\n", j.CommittedStep)
	if g := r.Generation; g != nil {
		fmt.Fprintf(os.Stdout, "generation %d: dp %d × tp %d, global batch %d, resume from step %d\n",
			g.Number, g.DpSize, g.TpSize, g.GlobalBatch, g.ResumeStep)
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RANK\tWORKER\tADDRESS\tDP\tTP\tROWS")
		for _, rk := range g.Ranks {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t[%d,%d)\n", rk.Rank, rk.WorkerId, rk.Address, rk.Dp, rk.Tp,
				rk.BatchOffset, rk.BatchOffset+rk.BatchRows)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, c := range r.Checkpoints {
		fmt.Fprintf(os.Stdout, "checkpoint step %d (generation %d)\n", c.Step, c.Generation)
	}
	return nil
}

func runJobs(ctx context.Context, args []string) error {
	fs, cf := newClusterFlags("jobs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl, ctx, cancel := cf.client(ctx)
	defer cancel()
	defer cl.Close()
	jobs, err := cl.ListJobs(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tGENERATION\tSTEP\tREASON")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", j.Id, coord.StateName(j.State), j.Generation, j.CommittedStep, j.Reason)
	}
	return tw.Flush()
}

func runWorkers(ctx context.Context, args []string) error {
	fs, cf := newClusterFlags("workers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl, ctx, cancel := cf.client(ctx)
	defer cancel()
	defer cl.Close()
	ws, err := cl.ListWorkers(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tSTATE\tADDRESS\tCORES\tJOB\tREASON")
	for _, w := range ws {
		state := "alive"
		if w.State == pb.WorkerState_WORKER_STATE_LOST {
			state = "lost"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", w.Id, state, w.Address, w.Cores, orNone(w.JobId), w.Reason)
	}
	return tw.Flush()
}

func runCancel(ctx context.Context, args []string) error {
	fs, cf := newClusterFlags("cancel")
	reason := fs.String("reason", "", "why (recorded on the job)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: ringctl cancel [flags] JOB")
	}
	cl, ctx, cancel := cf.client(ctx)
	defer cancel()
	defer cl.Close()
	j, err := cl.CancelJob(ctx, fs.Arg(0), *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "%s %s\n", j.Id, coord.StateName(j.State))
	return nil
}

func runCoordinators(ctx context.Context, args []string) error {
	fs, cf := newClusterFlags("coordinators")
	remove := fs.String("remove", "", "remove this (dead) member from the group")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cl, ctx, cancel := cf.client(ctx)
	defer cancel()
	defer cl.Close()
	if *remove != "" {
		if err := cl.RemoveCoordinator(ctx, *remove); err != nil {
			return err
		}
		fmt.Fprintf(os.Stdout, "removed %s\n", *remove)
		return nil
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUFFRAGE\tSTATE\tRAFT\tGRPC\tAPPLIED")
	for _, m := range st.Members {
		state, applied := "unreachable", "-"
		if m.GrpcAddress != "" {
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			if ms, err := cl.StatusAt(pctx, m.GrpcAddress); err == nil {
				state, applied = ms.RaftState, fmt.Sprint(ms.AppliedIndex)
			}
			pcancel()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Id, m.Suffrage, state, m.RaftAddress, orNone(m.GrpcAddress), applied)
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
