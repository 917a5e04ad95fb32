package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// clusterCommands are the commands that talk to a coordinator group. Each
// is a thin wrapper over coord.Client, which follows leader redirects.
func clusterCommands() []*cobra.Command {
	var cmds []*cobra.Command
	var watchAPI string
	var watchInterval time.Duration
	add := func(use, short string, args cobra.PositionalArgs, run func(ctx context.Context, cf *clusterFlags, args []string) error) *cobra.Command {
		cf := &clusterFlags{}
		c := &cobra.Command{
			Use: use, Short: short, Args: args,
			RunE: func(c *cobra.Command, args []string) error {
				cf.out = c.OutOrStdout()
				return plainErrors(run(c.Context(), cf, args))
			},
		}
		cf.register(c)
		cmds = append(cmds, c)
		return c
	}
	var so submitOptions
	submit := add("submit (SPEC.yaml | --preset NAME | --from JOB[@STEP]) [--set KEY=VALUE…]", "submit a job spec (file, --preset, or the --from job's) to the coordinators", maxArgs(1),
		func(ctx context.Context, cf *clusterFlags, args []string) error {
			return runSubmit(ctx, cf, so, args)
		})
	submit.Flags().StringVar(&so.preset, "preset", "", "submit a built-in preset instead of a file: "+strings.Join(jobspec.PresetNames(), ", "))
	submit.Flags().StringVar(&so.from, "from", "", "start from this job's committed checkpoint (JOB: its newest; JOB@STEP) — parameters, AdamW state and iteration, resharded to the new layout; the model must match, the layout, LR schedule and max_iters may differ; without a spec, the job's own spec")
	submit.Flags().StringArrayVar(&so.sets, "set", nil, "override a spec field (repeatable): train.max_iters=2000, parallel.tp=1, …")
	completePresets(submit, "preset")

	add("status [JOB]", "show a job (with its rank table), or the coordinator group", maxArgs(1), runStatus)
	add("jobs", "list jobs", noArgs, runJobs)
	add("workers", "list workers", noArgs, runWorkers)

	var reason string
	cancel := add("cancel JOB", "cancel a job", exactArgs(1),
		func(ctx context.Context, cf *clusterFlags, args []string) error {
			return runCancel(ctx, cf, args[0], reason)
		})
	cancel.Flags().StringVar(&reason, "reason", "", "why (recorded on the job)")

	watch := add("watch JOB", "follow a job live (progress bar, loss sparkline; plain lines when not a terminal) through the dashboard API", exactArgs(1),
		func(ctx context.Context, cf *clusterFlags, args []string) error {
			return runWatch(ctx, cf, args[0], watchAPI, watchInterval)
		})
	watch.Flags().StringVar(&watchAPI, "api", "", "a coordinator's HTTP address or URL (default: $RINGMASTER_API, else the running `ringctl local` cluster's)")
	watch.Flags().DurationVar(&watchInterval, "interval", time.Second, "how often to poll")

	var po plotOptions
	plotCmd := add("plot JOB [-o FILE.png|.svg|.pdf]", "draw a job's loss and tokens/s curves into an image, through the dashboard API", exactArgs(1),
		func(ctx context.Context, cf *clusterFlags, args []string) error {
			return runPlot(ctx, cf, args[0], po)
		})
	plotCmd.Flags().StringVarP(&po.output, "output", "o", "", "the image to write; its extension picks the type: .png, .svg or .pdf (default JOB.png)")
	plotCmd.Flags().IntVar(&po.width, "width", 1200, "image width in pixels (96 per inch for .svg and .pdf)")
	plotCmd.Flags().IntVar(&po.height, "height", 900, "image height in pixels")
	plotCmd.Flags().Lookup("json").Usage = "print what was written (job, name, output, format, size, points, generations) as one JSON object"
	plotCmd.Flags().StringVar(&po.api, "api", "", "a coordinator's HTTP address or URL (default: $RINGMASTER_API, else the running `ringctl local` cluster's)")

	var remove string
	coords := add("coordinators", "list coordinator members and their raft state; --remove ID drops a dead one", noArgs,
		func(ctx context.Context, cf *clusterFlags, _ []string) error { return runCoordinators(ctx, cf, remove) })
	coords.Flags().StringVar(&remove, "remove", "", "remove this (dead) member from the group")
	return cmds
}

// plainErrors renders gRPC statuses as "Code: message" instead of
// "rpc error: code = Code desc = message".
func plainErrors(err error) error {
	if st, ok := status.FromError(err); ok && err != nil {
		return fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	return err
}

// clusterFlags are shared by every cluster command.
type clusterFlags struct {
	addrs   string
	tlsDir  string
	tlsName string
	timeout time.Duration
	json    bool
	out     io.Writer
	tls     *tlsauth.Source // the operator certificate newClient loaded (nil: plaintext)
}

func (cf *clusterFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&cf.addrs, "coordinators", "", "comma-separated coordinator gRPC addresses; any one will do (default: $RINGMASTER_COORDINATORS, else the running `ringctl local` cluster, else 127.0.0.1:7100 when something listens there)")
	c.Flags().StringVar(&cf.tlsDir, "tls-dir", "", "directory with the cluster's ca.crt and your operator certificate (default: $RINGMASTER_TLS_DIR, else the running `ringctl local` cluster's; none: plaintext)")
	c.Flags().StringVar(&cf.tlsName, "tls-name", localcluster.OperatorCert, "certificate file name in --tls-dir (NAME.crt, NAME.key)")
	c.Flags().DurationVar(&cf.timeout, "timeout", 15*time.Second, "give up after this long (retrying through leader changes)")
	c.Flags().BoolVar(&cf.json, "json", false, "print the coordinators' answer as JSON")
}

// defaultCoordinator is where a coordinator listens by default (cmd/coordinator --grpc-addr).
const defaultCoordinator = "127.0.0.1:7100"

// coordinators resolves the addresses to dial: --coordinators, then
// RINGMASTER_COORDINATORS, then a running `ringctl local` cluster (its
// discovery file in ./ringmaster-data/local or the runtime directory), then
// a coordinator on the default port if one accepts a connection. With none
// it fails at once, naming both ways to get one. localTLS is the TLS
// directory of the local cluster the addresses came from ("" otherwise).
func (cf *clusterFlags) coordinators() (addrs []string, localTLS string, err error) {
	list := cf.addrs
	if list == "" {
		list = os.Getenv("RINGMASTER_COORDINATORS")
	}
	if list == "" {
		for _, dir := range []string{defaultLocalDir, ""} {
			if d, err := localcluster.Find(dir); err == nil && len(d.Coordinators) > 0 {
				return d.Coordinators, d.TLSDir, nil
			}
		}
		if conn, err := net.DialTimeout("tcp", defaultCoordinator, 500*time.Millisecond); err == nil {
			conn.Close()
			return []string{defaultCoordinator}, "", nil
		}
		return nil, "", errors.New("no coordinators to talk to: RINGMASTER_COORDINATORS is unset, no `ringctl local` cluster is running, and nothing listens on " +
			defaultCoordinator + "; start a local cluster with `ringctl local -keep`, or name a running group with RINGMASTER_COORDINATORS=host:port,… (or --coordinators host:port,…)")
	}
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, "", usagef("--coordinators %q: no address in it; want host:port,…", list)
	}
	return addrs, "", nil
}

// newClient dials addrs presenting the operator certificate in --tls-dir,
// else $RINGMASTER_TLS_DIR, else localTLS (the local cluster's); in
// plaintext when none is given.
func (cf *clusterFlags) newClient(addrs []string, localTLS string) (*coord.Client, error) {
	src, err := cf.tlsSource(localTLS)
	if err != nil || src == nil {
		return coord.NewClient(addrs), err
	}
	cf.tls = src
	return coord.NewClient(addrs, src.DialOption(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}})), nil
}

// tlsSource loads the operator certificate from --tls-dir, else
// $RINGMASTER_TLS_DIR, else localTLS; nil when none is given (plaintext).
func (cf *clusterFlags) tlsSource(localTLS string) (*tlsauth.Source, error) {
	dir := cf.tlsDir
	if dir == "" {
		dir = os.Getenv("RINGMASTER_TLS_DIR")
	}
	if dir == "" {
		dir = localTLS
	}
	if dir == "" {
		return nil, nil
	}
	src, err := tlsauth.Load(tlsauth.InDir(dir, cf.tlsName), nil)
	if err != nil {
		return nil, fmt.Errorf("--tls-dir %s: %w (issue one with `ringctl certs issue --role operator %s`)", dir, err, cf.tlsName)
	}
	return src, nil
}

func (cf *clusterFlags) client(ctx context.Context) (*coord.Client, context.Context, context.CancelFunc, error) {
	if cf.timeout <= 0 {
		return nil, nil, nil, usagef("--timeout %v: want > 0", cf.timeout)
	}
	addrs, localTLS, err := cf.coordinators()
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := cf.newClient(addrs, localTLS)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	return cl, ctx, cancel, nil
}

// printJSON writes one protobuf message as a JSON document.
func (cf *clusterFlags) printJSON(m proto.Message) error {
	b, err := jsonOpts().Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cf.out, string(b))
	return err
}

// printJSONList writes protobuf messages as one JSON list, whatever their
// number (a list of one stays a list, none is []).
func (cf *clusterFlags) printJSONList(msgs []proto.Message) error {
	parts := make([]string, 0, len(msgs))
	for _, m := range msgs {
		b, err := jsonOpts().Marshal(m)
		if err != nil {
			return err
		}
		parts = append(parts, string(b))
	}
	_, err := fmt.Fprintln(cf.out, "["+strings.Join(parts, ",\n")+"]")
	return err
}

func jsonOpts() protojson.MarshalOptions {
	return protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}
}

// submitOptions are submit's flags besides the cluster's.
type submitOptions struct {
	preset string
	from   string   // JOB[@STEP]
	sets   []string // KEY=VALUE overrides
}

func runSubmit(ctx context.Context, cf *clusterFlags, so submitOptions, args []string) error {
	var fromJob string
	var fromStep int64
	if so.from != "" {
		var err error
		if fromJob, fromStep, err = parseRef(so.from); err != nil {
			return err
		}
		fromStep = max(fromStep, 0) // 0: the newest
	}
	var doc []byte
	switch {
	case so.preset != "" && len(args) == 0:
		s, err := jobspec.Preset(so.preset)
		if err != nil {
			return err
		}
		doc = s.Marshal()
	case so.preset == "" && len(args) == 1:
		b, err := os.ReadFile(args[0])
		if err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
		doc = b
	case so.preset == "" && len(args) == 0 && fromJob != "":
		cl, cctx, cancel, err := cf.client(ctx)
		if err != nil {
			return err
		}
		r, err := cl.GetJob(cctx, fromJob)
		cancel()
		cl.Close()
		if err != nil {
			return fmt.Errorf("--from %s: %w", fromJob, err)
		}
		doc = r.Job.SpecJson
	default:
		return usagef("give a spec file, --preset NAME or --from JOB, not a file and a preset")
	}
	if len(so.sets) > 0 {
		spec, err := jobspec.Parse(doc)
		if err != nil {
			return err
		}
		if spec, err = jobspec.Override(spec, so.sets); err != nil {
			return usagef("--set: %v", err)
		}
		doc = spec.Marshal()
	}
	if spec, err := jobspec.Parse(doc); err == nil && !cf.json {
		// One worker's share of the smallest layout the job starts with.
		layout := jobspec.Layout{DP: spec.Parallel.MinWorkers / spec.Parallel.TP, TP: spec.Parallel.TP}
		if _, _, err := estimateSpec(cf.out, spec, layout, false); err != nil {
			return err
		}
	} // an invalid spec is reported by the coordinator, as before
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	j, err := cl.Submit(ctx, &pb.SubmitJobRequest{Spec: doc, FromJob: fromJob, FromStep: fromStep})
	if err != nil {
		return err
	}
	if cf.json {
		return cf.printJSON(j)
	}
	fmt.Fprintf(cf.out, "%s %s", j.Id, coord.StateName(j.State))
	if f := j.InitFrom; f != nil {
		fmt.Fprintf(cf.out, ", starting from %s@%d (%d TP shard(s))", f.JobId, f.Step, len(f.Shards))
	}
	fmt.Fprintln(cf.out)
	return nil
}

func runStatus(ctx context.Context, cf *clusterFlags, args []string) error {
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	if len(args) == 0 {
		st, err := cl.Status(ctx)
		if err != nil {
			return err
		}
		if cf.json {
			return cf.printJSON(st)
		}
		fmt.Fprintf(cf.out, "answered by %s (%s), leader %s at %s, term %d, applied %d\n",
			st.NodeId, st.RaftState, orNone(st.LeaderId), orNone(st.LeaderGrpcAddress), st.Term, st.AppliedIndex)
		return nil
	}
	r, err := cl.GetJob(ctx, args[0])
	if err != nil {
		return err
	}
	if cf.json {
		return cf.printJSON(r)
	}
	j := r.Job
	fmt.Fprintf(cf.out, "job %s: %s", j.Id, coord.StateName(j.State))
	if j.Reason != "" {
		fmt.Fprintf(cf.out, " (%s)", j.Reason)
	}
	fmt.Fprintf(cf.out, "\ncommitted step %d\n", j.CommittedStep)
	if r.Generation == nil {
		// The same word as `jobs` shows: a waiting or ended job has none.
		fmt.Fprintf(cf.out, "generation %s\n", generationName(0))
	}
	if g := r.Generation; g != nil {
		fmt.Fprintf(cf.out, "generation %d: dp %d × tp %d, global batch %d, resume from step %d\n",
			g.Number, g.DpSize, g.TpSize, g.GlobalBatch, g.ResumeStep)
		tw := tabwriter.NewWriter(cf.out, 0, 4, 2, ' ', 0)
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
		fmt.Fprintf(cf.out, "checkpoint step %d (generation %d)\n", c.Step, c.Generation)
	}
	return nil
}

func runJobs(ctx context.Context, cf *clusterFlags, _ []string) error {
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	jobs, err := cl.ListJobs(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return cf.printJSONList(asMessages(jobs))
	}
	tw := tabwriter.NewWriter(cf.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tGENERATION\tSTEP\tREASON")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", j.Id, coord.StateName(j.State), generationName(j.Generation), j.CommittedStep, j.Reason)
	}
	return tw.Flush()
}

func runWorkers(ctx context.Context, cf *clusterFlags, _ []string) error {
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	ws, err := cl.ListWorkers(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return cf.printJSONList(asMessages(ws))
	}
	tw := tabwriter.NewWriter(cf.out, 0, 4, 2, ' ', 0)
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

func runCancel(ctx context.Context, cf *clusterFlags, id, reason string) error {
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	j, err := cl.CancelJob(ctx, id, reason)
	if err != nil {
		return err
	}
	if cf.json {
		return cf.printJSON(j)
	}
	fmt.Fprintf(cf.out, "%s %s", j.Id, coord.StateName(j.State))
	if f := j.InitFrom; f != nil {
		fmt.Fprintf(cf.out, ", starting from %s@%d (%d TP shard(s))", f.JobId, f.Step, len(f.Shards))
	}
	fmt.Fprintln(cf.out)
	return nil
}

func runCoordinators(ctx context.Context, cf *clusterFlags, remove string) error {
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	if remove != "" {
		if err := cl.RemoveCoordinator(ctx, remove); err != nil {
			return err
		}
		return cf.printRemoved(remove)
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return cf.printJSON(st)
	}
	tw := tabwriter.NewWriter(cf.out, 0, 4, 2, ' ', 0)
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

// printRemoved reports a removed coordinator member: {"removed": ID} with --json.
func (cf *clusterFlags) printRemoved(id string) error {
	if !cf.json {
		_, err := fmt.Fprintf(cf.out, "removed %s\n", id)
		return err
	}
	b, err := json.Marshal(map[string]string{"removed": id})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(cf.out, "%s\n", b)
	return err
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func asMessages[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// generationName is a job's current generation as jobs and status print
// it: "-" for none (a waiting or ended job).
func generationName(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}
