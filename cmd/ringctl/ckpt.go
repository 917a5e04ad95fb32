package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt/transfer"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// newCkptCmd is `ringctl ckpt`: the committed checkpoints the coordinators
// record, and the shards behind them, read from the workers that hold them
// (over the workers' peer service, presenting the operator certificate).
func newCkptCmd() *cobra.Command {
	c := &cobra.Command{Use: "ckpt", Short: "list, show and verify committed checkpoints"}
	sub := func(use, short string, args cobra.PositionalArgs, run func(ctx context.Context, cf *clusterFlags, args []string) error) *cobra.Command {
		cf := &clusterFlags{}
		cc := &cobra.Command{
			Use: use, Short: short, Args: args,
			RunE: func(c *cobra.Command, args []string) error {
				cf.out = c.OutOrStdout()
				return plainErrors(run(c.Context(), cf, args))
			},
		}
		cf.register(cc)
		c.AddCommand(cc)
		return cc
	}
	sub("ls [JOB]", "list committed checkpoints: step, generation, age, holders of each TP shard, size", maxArgs(1), runCkptList)
	sub("show JOB[@STEP]", "show a committed checkpoint: its commit record, and the shards' manifests read from a holder and checked against it", exactArgs(1), runCkptShow)
	sub("verify JOB[@STEP]", "read every shard of a committed checkpoint from every holder and check it against the commit record's checksum", exactArgs(1), runCkptVerify)
	var out string
	export := sub("export JOB[@STEP] -o DIR", "gather a committed checkpoint's TP shards into the whole model and save it as `ringctl train` does (model.safetensors, tokenizer, spec): sample, eval, export and PyTorch load it", exactArgs(1),
		func(ctx context.Context, cf *clusterFlags, args []string) error {
			if out == "" {
				return usagef("-o DIR is required")
			}
			return runCkptExport(ctx, cf, args[0], out)
		})
	export.Flags().StringVarP(&out, "output", "o", "", "directory to write the model to")
	return c
}

// exportCheckpoint fetches every TP shard of the committed checkpoint ref
// (JOB[@STEP]) from its holders, checked against the commit record,
// gathers them into the whole model and saves it in dir. It returns the
// step it exported.
func exportCheckpoint(ctx context.Context, cf *clusterFlags, ref, dir string) (int64, error) {
	var step int64
	err := openCheckpoint(ctx, cf, ref, func(ctx context.Context, cl *coord.Client, c *pb.Checkpoint) error {
		shards, _, err := cf.fetchShards(ctx, cl, c)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(shards, func(sh *ckpt.Shard) bool { return sh.TP == 0 })
		if i < 0 || shards[i].Meta[train.MetaSpec] == "" || shards[i].Meta[train.MetaTokenizer] == "" {
			return fmt.Errorf("%s@%d: the tp 0 shard carries no spec and tokenizer (written by an older worker); export the job's final model from its model directory instead", c.JobId, c.Step)
		}
		first := shards[i]
		spec, err := jobspec.Parse([]byte(first.Meta[train.MetaSpec]))
		if err != nil {
			return fmt.Errorf("%s@%d: spec: %w", c.JobId, c.Step, err)
		}
		tok, err := data.ParseTokenizer([]byte(first.Meta[train.MetaTokenizer]))
		if err != nil {
			return fmt.Errorf("%s@%d: tokenizer: %w", c.JobId, c.Step, err)
		}
		m, err := model.New(spec.Model, spec.Train.Seed)
		if err != nil {
			return fmt.Errorf("%s@%d: %w", c.JobId, c.Step, err)
		}
		defer m.Close()
		whole, err := ckpt.Gather(shards, ckpt.Manifest(m.Params().Views))
		if err != nil {
			return fmt.Errorf("%s@%d: %w", c.JobId, c.Step, err)
		}
		copy(m.Params().Data, whole.Data)
		step = c.Step
		return train.SaveModel(dir, spec, tok, first.Iter, m.Params())
	})
	return step, err
}

func runCkptExport(ctx context.Context, cf *clusterFlags, ref, dir string) error {
	step, err := exportCheckpoint(ctx, cf, ref, dir)
	if err != nil {
		return err
	}
	job, _, _ := parseRef(ref)
	fmt.Fprintf(cf.out, "exported %s@%d to %s (try: ringctl sample -model %s)\n", job, step, dir, dir)
	return nil
}

// parseRef splits JOB[@STEP]; step -1 means the newest committed one.
func parseRef(ref string) (job string, step int64, err error) {
	job, s, ok := strings.Cut(ref, "@")
	if job == "" {
		return "", 0, usagef("%q: want JOB or JOB@STEP", ref)
	}
	if !ok {
		return job, -1, nil
	}
	step, err = strconv.ParseInt(s, 10, 64)
	if err != nil || step < 0 {
		return "", 0, usagef("%q: the step after @ must be a non-negative integer", ref)
	}
	return job, step, nil
}

// committed returns the job's commit record for step (-1: the newest).
func committed(ctx context.Context, cl *coord.Client, job string, step int64) (*pb.Checkpoint, error) {
	r, err := cl.GetJob(ctx, job)
	if err != nil {
		return nil, err
	}
	if len(r.Checkpoints) == 0 {
		return nil, fmt.Errorf("job %s has no committed checkpoint yet", job)
	}
	if step < 0 {
		return r.Checkpoints[len(r.Checkpoints)-1], nil
	}
	var steps []string
	for _, c := range r.Checkpoints {
		if c.Step == step {
			return c, nil
		}
		steps = append(steps, strconv.FormatInt(c.Step, 10))
	}
	return nil, fmt.Errorf("job %s has no committed checkpoint at step %d; committed steps: %s", job, step, strings.Join(steps, ", "))
}

func runCkptList(ctx context.Context, cf *clusterFlags, args []string) error {
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	var jobs []string
	if len(args) == 1 {
		jobs = args
	} else {
		all, err := cl.ListJobs(ctx)
		if err != nil {
			return err
		}
		for _, j := range all {
			jobs = append(jobs, j.Id)
		}
	}
	var list []*pb.Checkpoint
	for _, j := range jobs {
		r, err := cl.GetJob(ctx, j)
		if err != nil {
			return err
		}
		list = append(list, r.Checkpoints...)
	}
	if cf.json {
		return cf.printJSONList(asMessages(list))
	}
	tw := tabwriter.NewWriter(cf.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTEP\tGENERATION\tAGE\tSIZE\tHOLDERS")
	now := time.Now()
	for _, c := range list {
		age := "-"
		if c.CommittedUnixMs > 0 {
			age = now.Sub(time.UnixMilli(c.CommittedUnixMs)).Round(time.Second).String()
		}
		var size int64
		var holders []string
		for _, sh := range c.Shards {
			size += sh.Bytes
			holders = append(holders, fmt.Sprintf("tp%d: %s", sh.Tp, strings.Join(sh.WorkerIds, ",")))
		}
		final := ""
		if c.Final {
			final = " (final)"
		}
		fmt.Fprintf(tw, "%s\t%d%s\t%d\t%s\t%s\t%s\n", c.JobId, c.Step, final, c.Generation, age, humanBytes(size), strings.Join(holders, "; "))
	}
	return tw.Flush()
}

// liveAddrs maps every live worker to its peer address.
func liveAddrs(ctx context.Context, cl *coord.Client) (map[string]string, error) {
	ws, err := cl.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	addr := map[string]string{}
	for _, w := range ws {
		if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
			addr[w.Id] = w.Address
		}
	}
	return addr, nil
}

// holderSet resolves the commit record's holders of one shard to the live
// ones' peer addresses.
func holderSet(sh *pb.ShardHolders, addr map[string]string) ([]transfer.Holder, error) {
	var hs []transfer.Holder
	for _, id := range sh.WorkerIds {
		if a, ok := addr[id]; ok {
			hs = append(hs, transfer.Holder{ID: id, Address: a})
		}
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no live worker holds tp shard %d (holders recorded: %s)", sh.Tp, strings.Join(sh.WorkerIds, ", "))
	}
	return hs, nil
}

// openCheckpoint resolves ref (JOB[@STEP]) to its commit record through
// the coordinators and calls fn with the client; shared by show, verify
// and export.
func openCheckpoint(ctx context.Context, cf *clusterFlags, ref string, fn func(ctx context.Context, cl *coord.Client, c *pb.Checkpoint) error) error {
	job, step, err := parseRef(ref)
	if err != nil {
		return err
	}
	cl, ctx, cancel, err := cf.client(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	defer cl.Close()
	c, err := committed(ctx, cl, job, step)
	if err != nil {
		return err
	}
	return fn(ctx, cl, c)
}

// fetchShards reads every TP shard of c from its live holders, each
// checked against the commit record, in the record's order.
func (cf *clusterFlags) fetchShards(ctx context.Context, cl *coord.Client, c *pb.Checkpoint) ([]*ckpt.Shard, []transfer.Stats, error) {
	addr, err := liveAddrs(ctx, cl)
	if err != nil {
		return nil, nil, err
	}
	shards, stats := make([]*ckpt.Shard, len(c.Shards)), make([]transfer.Stats, len(c.Shards))
	for i, sh := range c.Shards {
		hs, err := holderSet(sh, addr)
		if err == nil {
			shards[i], stats[i], err = transfer.Fetch(ctx, transfer.Request{Job: c.JobId, Step: int(c.Step), TP: int(sh.Tp), SHA256: sh.Checksum}, hs, cf.dialer())
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s@%d: %w", c.JobId, c.Step, err)
		}
	}
	return shards, stats, nil
}

// dialer opens PeerCheckpoints clients to workers, with the operator
// certificate when the cluster runs TLS.
func (cf *clusterFlags) dialer() transfer.Dialer {
	return transfer.GRPCDialer(func(id string) grpc.DialOption {
		if cf.tls == nil {
			return nil
		}
		return cf.tls.DialOption(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}, Name: id})
	})
}

// shardView is what `ckpt show` prints of a fetched shard.
type shardView struct {
	TP         int32    `json:"tp"`
	TPSize     int      `json:"tp_size"`
	Holders    []string `json:"holders"`
	SHA256     string   `json:"sha256"`
	Bytes      int64    `json:"bytes"`
	Verified   string   `json:"verified_from"`
	Iter       int      `json:"iter"`
	OptimSteps int      `json:"optimizer_steps"`
	OptimRange [2]int   `json:"optimizer_range"`
	Params     int      `json:"parameters"`
	Tensors    []string `json:"tensors"`
}

func runCkptShow(ctx context.Context, cf *clusterFlags, args []string) error {
	return openCheckpoint(ctx, cf, args[0], func(ctx context.Context, cl *coord.Client, c *pb.Checkpoint) error {
		shards, stats, err := cf.fetchShards(ctx, cl, c)
		if err != nil {
			return err
		}
		var views []shardView
		for i, sh := range c.Shards {
			got, st := shards[i], stats[i]
			v := shardView{TP: sh.Tp, TPSize: got.TPSize, Holders: sh.WorkerIds, SHA256: fmt.Sprintf("%x", sh.Checksum),
				Bytes: st.Bytes, Verified: st.From[len(st.From)-1], Iter: got.Iter, OptimSteps: got.Optim.Steps,
				OptimRange: [2]int{got.Optim.Lo, got.Optim.Hi}, Params: len(got.Data)}
			for _, t := range got.Manifest {
				v.Tensors = append(v.Tensors, describeTensor(t))
			}
			views = append(views, v)
		}
		if cf.json {
			return cf.printJSONValue(map[string]any{"job": c.JobId, "step": c.Step, "generation": c.Generation, "final": c.Final,
				"committed_unix_ms": c.CommittedUnixMs, "shards": views})
		}
		fmt.Fprintf(cf.out, "checkpoint %s@%d: generation %d, %d TP shard(s), committed %s\n", c.JobId, c.Step, c.Generation, len(c.Shards),
			time.UnixMilli(c.CommittedUnixMs).UTC().Format(time.RFC3339))
		for _, v := range views {
			fmt.Fprintf(cf.out, "tp %d of %d: %s, sha256 %s, verified (read from %s)\n  holders %s\n  iteration %d, optimizer steps %d over parameters [%d,%d) of %d\n",
				v.TP, v.TPSize, humanBytes(v.Bytes), v.SHA256, v.Verified, strings.Join(v.Holders, ", "), v.Iter, v.OptimSteps, v.OptimRange[0], v.OptimRange[1], v.Params)
			for _, t := range v.Tensors {
				fmt.Fprintf(cf.out, "    %s\n", t)
			}
		}
		return nil
	})
}

// printJSONValue writes v as one indented JSON document.
func (cf *clusterFlags) printJSONValue(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cf.out, string(b))
	return err
}

func describeTensor(t ckpt.Tensor) string {
	s := fmt.Sprintf("%s %v", t.Name, t.Shape)
	if full := t.FullShape(); fmt.Sprint(full) != fmt.Sprint(t.Shape) {
		s += fmt.Sprintf(" (of %v)", full)
	}
	return s
}

func runCkptVerify(ctx context.Context, cf *clusterFlags, args []string) error {
	return openCheckpoint(ctx, cf, args[0], func(ctx context.Context, cl *coord.Client, c *pb.Checkpoint) error {
		addr, err := liveAddrs(ctx, cl)
		if err != nil {
			return err
		}
		type result struct {
			TP     int32  `json:"tp"`
			Holder string `json:"holder"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		}
		var results []result
		var lost []string
		failed := false
		for _, sh := range c.Shards {
			good := 0
			for _, id := range sh.WorkerIds {
				a, alive := addr[id]
				if !alive {
					results, failed = append(results, result{sh.Tp, id, false, "worker not alive"}), true
					continue
				}
				_, st, err := transfer.Fetch(ctx, transfer.Request{Job: c.JobId, Step: int(c.Step), TP: int(sh.Tp), SHA256: sh.Checksum},
					[]transfer.Holder{{ID: id, Address: a}}, cf.dialer())
				if err != nil {
					results, failed = append(results, result{sh.Tp, id, false, err.Error()}), true
					continue
				}
				good++
				results = append(results, result{sh.Tp, id, true, fmt.Sprintf("%s, sha256 matches the commit record", humanBytes(st.Bytes))})
			}
			if good == 0 {
				lost = append(lost, fmt.Sprintf("tp %d", sh.Tp))
			}
		}
		if cf.json {
			if err := cf.printJSONValue(results); err != nil {
				return err
			}
		} else {
			tw := tabwriter.NewWriter(cf.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TP\tHOLDER\tRESULT\tDETAIL")
			for _, r := range results {
				res := "ok"
				if !r.OK {
					res = "FAILED"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", r.TP, r.Holder, res, r.Detail)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		switch {
		case len(lost) > 0:
			return fmt.Errorf("checkpoint %s@%d cannot be restored: no holder has a correct copy of %s", c.JobId, c.Step, strings.Join(lost, ", "))
		case failed:
			return errors.New("some holders failed (see above); the checkpoint is still restorable from the others")
		}
		return nil
	})
}

// humanBytes renders n bytes with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// fromCheckpoint is the --checkpoint JOB@STEP flag of sample and eval: the
// committed checkpoint is exported to a temporary directory, which then
// stands in for --model.
type fromCheckpoint struct {
	ref string
	cf  clusterFlags
}

func (f *fromCheckpoint) register(c *cobra.Command) {
	c.Flags().StringVar(&f.ref, "checkpoint", "", "use a running cluster's committed checkpoint JOB[@STEP] instead of --model (read from the workers that hold it)")
	c.Flags().StringVar(&f.cf.addrs, "coordinators", "", "with --checkpoint: the cluster's coordinators (default: $RINGMASTER_COORDINATORS, else the running `ringctl local` cluster)")
	c.Flags().StringVar(&f.cf.tlsDir, "tls-dir", "", "with --checkpoint: the cluster's ca.crt and operator certificate (default: $RINGMASTER_TLS_DIR, else the local cluster's)")
	f.cf.tlsName, f.cf.timeout = localcluster.OperatorCert, time.Minute
}

// dir returns the model directory to use: modelDir, or the exported
// checkpoint (cleanup removes it).
func (f *fromCheckpoint) dir(ctx context.Context, modelDir string) (string, func(), error) {
	if f.ref == "" {
		return modelDir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "ringmaster-ckpt-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	if _, err := exportCheckpoint(ctx, &f.cf, f.ref, tmp); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("--checkpoint %s: %w", f.ref, err)
	}
	return tmp, cleanup, nil
}
