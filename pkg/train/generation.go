package train

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/sysmem"
	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// runGeneration trains one generation of a job: joins its collective groups,
// builds the replica, resumes from the generation's checkpoint and steps
// until the job ends or the context is cancelled by a newer generation.
func (w *Worker) runGeneration(ctx context.Context, a *pb.Assignment) error {
	gen := a.Generation
	spec, err := jobspec.Parse(a.SpecJson)
	if err != nil {
		return fmt.Errorf("job %s: %w", a.JobId, err)
	}
	mesh, err := parallel.NewMesh(int(gen.DpSize), int(gen.TpSize))
	if err != nil {
		return fmt.Errorf("job %s generation %d: %w", a.JobId, gen.Number, err)
	}
	addrs, err := rankAddresses(gen, mesh)
	if err != nil {
		return fmt.Errorf("job %s generation %d: %w", a.JobId, gen.Number, err)
	}
	if int(a.Rank) < 0 || int(a.Rank) >= len(addrs) {
		return fmt.Errorf("job %s generation %d: rank %d outside a table of %d ranks", a.JobId, gen.Number, a.Rank, len(addrs))
	}
	me := gen.Ranks[a.Rank]
	layout := Layout{Mesh: mesh, DPRank: int(me.Dp), TPRank: int(me.Tp)}
	log := w.log.With("job", a.JobId, "generation", gen.Number, "dp", me.Dp, "tp", me.Tp)
	var comms []*allreduce.Communicator
	defer func() {
		for _, c := range comms {
			_ = c.Close()
		}
	}()
	ids := make([]string, len(gen.Ranks))
	for i, r := range gen.Ranks {
		ids[i] = r.WorkerId // who must be at each rank (checked on every link under TLS)
	}
	join := func(name string, index int, group []int) (*allreduce.Communicator, error) {
		tr, err := w.cfg.Peer.Join(allreduce.GroupConfig{
			Job: name, Generation: gen.Number, Rank: index, Peers: peerAddresses(addrs, group),
			PeerIDs: peerAddresses(ids, group), PeerTimeout: w.cfg.PeerTimeout,
		})
		if err != nil {
			return nil, err
		}
		c := allreduce.New(tr, allreduce.Options{Logger: log, Registerer: w.cfg.Registerer})
		comms = append(comms, c)
		return c, nil
	}
	if mesh.DP > 1 {
		if layout.DP, err = join(fmt.Sprintf("%s/dp/tp%d", a.JobId, me.Tp), int(me.Dp), mesh.DPGroup(int(me.Tp))); err != nil {
			return err
		}
	}
	if mesh.TP > 1 {
		if layout.TP, err = join(fmt.Sprintf("%s/tp/dp%d", a.JobId, me.Dp), int(me.Tp), mesh.TPGroup(int(me.Dp))); err != nil {
			return err
		}
	}
	if err := w.checkMemory(spec, mesh); err != nil {
		return fmt.Errorf("job %s generation %d on worker %s: %w", a.JobId, gen.Number, w.cfg.ID, err)
	}
	var topts []Option
	if w.cfg.Compute.GEMM != nil {
		topts = append(topts, WithCompute(w.cfg.Compute))
	}
	tr, err := NewReplica(spec, layout, topts...)
	if err != nil {
		return fmt.Errorf("job %s: %w", a.JobId, err)
	}
	defer tr.Close()
	jm := w.metrics.Job(a.JobId, int(a.Rank), mesh.World(), gen.Number, flopsPerToken(tr.Spec))
	w.jobMetrics.Store(jm)
	storeFloat(&w.valLoss, math.NaN())
	if gen.ResumeStep > 0 {
		if err := w.resume(ctx, log, gen, tr, jm); err != nil {
			return err
		}
	}
	if spec.Checkpoint.Interval > 0 {
		w.saver.warm(tr.Model.Params().Data, tr.opt.M, tr.opt.V)
	}
	w.generation.Store(gen.Number)
	log.Info("training", "from_step", tr.Iter(), "dp_size", mesh.DP, "tp_size", mesh.TP, "reason", gen.Reason)

	t := spec.Train
	var window stepWindow
	var prof stepProfile
	first := true
	for tr.Iter() < t.MaxIters {
		start := time.Now()
		st, err := tr.Step(ctx)
		if err != nil {
			return err
		}
		dt := time.Since(start)
		if first {
			first = false
			if r, ok := w.takeRecovery(a.JobId); ok {
				replayed := max(r.step-int(gen.ResumeStep), 0)
				jm.Recovered(time.Since(r.at), replayed)
				log.Info("recovered", "seconds", time.Since(r.at).Seconds(), "steps_replayed", replayed)
			}
		}
		if st.Skipped {
			log.Warn("step skipped: non-finite gradient norm (train.on_nonfinite: skip)",
				"iter", st.Iter, "loss", st.Loss, "grad_norm", st.GradNorm, "skipped_total", tr.Skipped())
			jm.NonFinite(st.Loss)
		}
		prof.add(dt, st)
		window.add(st, dt)
		wall, compute := window.medians()
		tokensPS := float64(st.Tokens*mesh.DP) / wall.Seconds()
		w.step.Store(int64(tr.Iter()))
		storeFloat(&w.loss, st.Loss)
		storeFloat(&w.tokensPS, tokensPS)
		storeFloat(&w.stepSecs, wall.Seconds())
		storeFloat(&w.compute, compute.Seconds())
		if !st.Skipped {
			jm.Observe(&metrics.Step{
				Next: tr.Iter(), Loss: st.Loss, LR: st.LR, GradNorm: st.GradNorm,
				Tokens: st.Tokens * mesh.DP, TokensPerSec: tokensPS, Duration: dt,
				ForwardBackward: st.ForwardBackward, Optimizer: st.Optimizer, TPComm: st.TPComm,
				DPWindow: st.DPWindow + st.ZeROGather, DPExposed: st.DPExposed + st.ZeROGather,
			})
		}
		if st.Iter%t.LogInterval == 0 {
			log.Info("step", "iter", st.Iter, "loss", st.Loss, "lr", st.LR)
		}
		if iv := t.EvalInterval; iv > 0 && tr.Iter()%iv == 0 && tr.Iter() < t.MaxIters {
			if err := w.evaluate(ctx, tr, jm, log); err != nil {
				return err
			}
		}
		if iv := spec.Checkpoint.Interval; iv > 0 && tr.Iter()%iv == 0 && tr.Iter() < t.MaxIters {
			w.checkpoint(ctx, a, tr, false, jm)
		}
	}
	if err := w.evaluate(ctx, tr, jm, log); err != nil {
		return err
	}
	if err := w.finish(ctx, a, tr); err != nil {
		return err
	}
	w.checkpoint(ctx, a, tr, true, jm)
	log.Info("finished", append([]any{"iters", tr.Iter(), "optimizer_bytes", tr.OptimizerBytes()}, prof.summary()...)...)
	<-ctx.Done() // wait for the coordinator to move this worker on
	return nil
}

// evaluate estimates the val loss (every rank of the generation, in step:
// tensor-parallel ranks evaluate together), exports it and puts it in the
// heartbeat for the dashboard.
func (w *Worker) evaluate(ctx context.Context, tr *Trainer, jm *metrics.JobTraining, log *slog.Logger) error {
	loss, err := tr.ValLoss(ctx)
	if err != nil {
		return fmt.Errorf("evaluate at step %d: %w", tr.Iter(), err)
	}
	jm.Eval(loss)
	storeFloat(&w.valLoss, loss)
	log.Info("eval", "iter", tr.Iter(), "val_loss", loss)
	return nil
}

// checkMemory refuses a generation whose replica (one lane, this rank's TP
// slice and, under ZeRO-1, its optimizer slice) would not fit in the memory
// the worker may use. A vocabulary the spec leaves to the tokenizer is
// counted as 1, so the estimate only errs low: a refusal is certain.
func (w *Worker) checkMemory(spec jobspec.Spec, mesh parallel.Mesh) error {
	est, err := jobspec.EstimateMemory(spec, jobspec.Layout{DP: mesh.DP, TP: mesh.TP, Lanes: 1, VocabSize: 1})
	if err != nil {
		return err
	}
	avail := w.memoryBytes()
	if avail == 0 {
		return nil
	}
	return est.Fits(avail)
}

// memoryBytes is what a job's replica may use here: --memory, else what the
// machine has available now, else 0 (unknown).
func (w *Worker) memoryBytes() int64 {
	if w.cfg.Memory > 0 {
		return w.cfg.Memory
	}
	if avail, ok := sysmem.Available(); ok {
		return avail
	}
	return 0
}

// rankAddresses checks a generation's rank table against the mesh the
// worker builds from it (rank r listed r-th, at mesh.Coords(r), computing
// rows mesh.Rows(dp, global batch)) and returns the address of every rank,
// by rank: the DP and TP groups are the mesh's, not rebuilt from the table.
func rankAddresses(gen *pb.Generation, mesh parallel.Mesh) ([]string, error) {
	if len(gen.Ranks) != mesh.World() {
		return nil, fmt.Errorf("rank table has %d ranks, mesh dp=%d × tp=%d needs %d", len(gen.Ranks), mesh.DP, mesh.TP, mesh.World())
	}
	addrs := make([]string, len(gen.Ranks))
	for i, r := range gen.Ranks {
		d, t := mesh.Coords(i)
		if int(r.Rank) != i || int(r.Dp) != d || int(r.Tp) != t {
			return nil, fmt.Errorf("rank table entry %d is rank %d at (dp %d, tp %d), the mesh puts rank %d at (dp %d, tp %d)", i, r.Rank, r.Dp, r.Tp, i, d, t)
		}
		if lo, hi := mesh.Rows(d, int(gen.GlobalBatch)); gen.GlobalBatch > 0 && (int(r.BatchOffset) != lo || int(r.BatchRows) != hi-lo) {
			return nil, fmt.Errorf("rank %d: table says rows [%d,+%d), this worker computes [%d,+%d) of batch %d", i, r.BatchOffset, r.BatchRows, lo, hi-lo, gen.GlobalBatch)
		}
		addrs[i] = r.Address
	}
	return addrs, nil
}

// peerAddresses lists what addrs says of a group's ranks (their addresses,
// or their worker ids), in group order.
func peerAddresses(addrs []string, group []int) []string {
	peers := make([]string, len(group))
	for i, r := range group {
		peers[i] = addrs[r]
	}
	return peers
}

// stepProfile collects per-step timings for the end-of-job summary (what the
// benchmarks read): median step time and the communication share.
type stepProfile struct {
	step, tp, window, exposed []time.Duration
	tokens                    int
}

func (p *stepProfile) add(d time.Duration, st StepStats) {
	p.step = append(p.step, d)
	p.tp = append(p.tp, st.TPComm)
	p.window = append(p.window, st.DPWindow)
	p.exposed = append(p.exposed, st.DPExposed)
	p.tokens = st.Tokens
}

func (p *stepProfile) summary() []any {
	ms := func(ds []time.Duration) float64 { return float64(median(ds).Microseconds()) / 1e3 }
	return []any{
		"median_step_ms", ms(p.step), "tokens_per_step", p.tokens,
		"tp_comm_ms", ms(p.tp), "dp_comm_window_ms", ms(p.window), "dp_comm_exposed_ms", ms(p.exposed),
	}
}
