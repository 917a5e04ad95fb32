package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt/transfer"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Metadata keys of the TP rank 0 shard of every checkpoint.
const (
	MetaSpec      = "spec"      // the job spec as trained (derived fields filled)
	MetaTokenizer = "tokenizer" // the tokenizer, as data.ParseTokenizer reads it
)

// checkpoint saves this worker's shard of the state at the current step.
// A periodic save costs the step loop only a copy of the parameters and
// optimizer state into the saver's staging buffers; the write, fsync,
// retention and report run in the background (w.saver). At most one save
// is in flight: one due while the previous is still writing is skipped and
// counted, never queued. The final save is synchronous, since the job ends
// on it. A failed write is logged, counted and not reported, so the
// coordinator never commits a step this worker does not hold.
func (w *Worker) checkpoint(ctx context.Context, a *pb.Assignment, tr *Trainer, final bool, jm *metrics.JobTraining) {
	start := time.Now()
	p, opt := tr.Model.Params(), tr.opt
	optim := ckpt.Optim{Lo: opt.Lo, Hi: opt.Hi, M: opt.M, V: opt.V, Steps: opt.Steps}
	if tr.zero1 != nil {
		// ZeRO-1 ranks hold slices of the moments. Gathered, every DP
		// replica's shard is whole and identical: a copy the coordinator
		// can compare by checksum, loadable into any layout. It is a
		// collective, so every rank gathers at every due step, before
		// deciding whether to skip the write.
		st, err := tr.ExportState(ctx)
		if err != nil {
			w.log.Warn("checkpoint not taken: gathering the ZeRO-1 moments failed", "job", a.JobId, "step", tr.Iter(), "err", err)
			return
		}
		optim = ckpt.Optim{Lo: 0, Hi: len(st.Params), M: st.M, V: st.V, Steps: st.Steps}
	}
	if final {
		w.saver.wait()
	}
	if !w.saver.begin() {
		jm.SaveSkipped()
		w.log.Warn("checkpoint skipped: the previous save is still being written; raise checkpoint.interval if this repeats",
			"job", a.JobId, "step", tr.Iter())
		return
	}
	shard := &ckpt.Shard{
		Job: a.JobId, Step: tr.Iter(), Generation: a.Generation.Number,
		TP: tr.layout.TPRank, TPSize: tr.layout.Mesh.TP, Spec: a.SpecJson,
		Manifest: ckpt.Manifest(p.Views), Data: p.Data, Optim: optim, Iter: tr.Iter(),
	}
	// What turns the checkpoint back into a model anywhere (`ringctl ckpt
	// export`): the tokenizer and the spec as trained, with its derived
	// fields (vocab_size) filled in, on the TP rank 0 shard. Both are fixed
	// for the run, so they are encoded off the step loop.
	describe := func() {
		if tr.layout.TPRank != 0 {
			return
		}
		shard.Meta = map[string]string{MetaSpec: string(tr.Spec.Marshal())}
		if tok, err := tr.Data.Tokenizer().MarshalJSON(); err == nil {
			shard.Meta[MetaTokenizer] = string(tok)
		}
	}
	keep := max(tr.Spec.Checkpoint.Keep, 2) // the committed one may lag the newest
	if final {
		defer w.saver.end()
		describe()
		w.persist(ctx, a, shard, keep, final, start, 0, jm)
		return
	}
	w.saver.stage(shard)
	stalled := time.Since(start)
	go func() {
		defer w.saver.end()
		describe()
		w.persist(ctx, a, shard, keep, final, start, stalled, jm)
	}()
}

// persist writes a shard durably, prunes old checkpoints, reports the
// shard (with its checksum) to the coordinator and offers it to the peers
// that keep copies of it. stalled is how long the step loop waited for
// the save (0: all of it, a synchronous save).
func (w *Worker) persist(ctx context.Context, a *pb.Assignment, shard *ckpt.Shard, keep int, final bool, start time.Time, stalled time.Duration, jm *metrics.JobTraining) {
	store := w.cfg.Checkpoints
	if err := store.Put(shard); err != nil {
		jm.SaveFailed()
		w.log.Error("checkpoint not written; training goes on and the last committed checkpoint stands",
			"job", shard.Job, "step", shard.Step, "err", err)
		return
	}
	took := time.Since(start)
	if stalled == 0 {
		stalled = took
	}
	jm.Saved(took, stalled, 4*int64(len(shard.Data)+len(shard.Optim.M)+len(shard.Optim.V)))
	if _, err := store.Retain(shard.Job, keep); err != nil {
		w.log.Warn("checkpoint retention", "job", shard.Job, "err", err)
	}
	info, err := store.Stat(shard.Job, shard.Step, shard.TP)
	if err != nil {
		jm.SaveFailed()
		w.log.Error("checkpoint written but unreadable; not reported", "job", shard.Job, "step", shard.Step, "err", err)
		return
	}
	w.report(ctx, &pb.ReportCheckpointRequest{
		WorkerId: w.cfg.ID, JobId: shard.Job, Generation: shard.Generation,
		Step: int64(shard.Step), Tp: int32(shard.TP), Final: final, Checksum: info.SHA256, Bytes: info.Bytes,
	})
	w.offerCopies(ctx, a, shard, info.SHA256)
}

// resume positions the replica at the generation's resume step. A rank
// that holds that checkpoint loads it from its store. One that does not
// (a newcomer, the replacement of a worker lost for good) or whose copy is
// corrupt fetches it from a holder the generation names, checked against
// the commit record's checksum, and stores it before use. In a
// data-parallel group, the lowest rank holding it then broadcasts it to
// the others, so every replica starts identical. It logs where the state
// came from and how many bytes it was, so that an operator (and
// bench/chaos) can tell local loads from re-fetched ones.
func (w *Worker) resume(ctx context.Context, log *slog.Logger, g *pb.Generation, tr *Trainer, jm *metrics.JobTraining) error {
	start := time.Now()
	// job is the checkpoint's job: this one's, or the one it was
	// submitted --from.
	job, step, tp := g.JobId, int(g.ResumeStep), tr.layout.TPRank
	if g.ResumeJob != "" {
		job = g.ResumeJob
	}
	var state State
	var held error
	source := "local"
	if from := int(g.ResumeTpSize); from > 0 && from != tr.layout.Mesh.TP {
		state, held = w.loadResharded(ctx, g, job, tr, from)
		source = fmt.Sprintf("resharded from tp %d", from)
	} else {
		state, held = w.load(job, tr, step)
	}
	if errors.Is(held, ckpt.ErrCorrupt) {
		jm.ChecksumFailure()
		w.log.Warn("stored checkpoint is corrupt; fetching a replica's copy", "job", job, "step", step, "tp", tp, "err", held)
	}
	if source == "local" && (errors.Is(held, ckpt.ErrNotFound) || errors.Is(held, ckpt.ErrCorrupt)) {
		if holders, sum := w.resumeHolders(g, tp); len(holders) > 0 {
			if _, err := w.fetchShard(ctx, job, step, tp, sum, holders, metrics.TransferFetch); err != nil {
				w.log.Warn("checkpoint shard not fetched from its holders", "job", job, "step", step, "tp", tp, "err", err)
			} else {
				state, held = w.load(job, tr, step)
				source = "peer"
			}
		}
	}
	fromReplica := false
	if tr.layout.Mesh.DP > 1 {
		// Which DP ranks hold it? One slot per rank, summed.
		holders := make([]float32, tr.layout.Mesh.DP)
		if held == nil {
			holders[tr.layout.DPRank] = 1
		}
		if err := tr.layout.DP.AllReduce(ctx, holders, allreduce.Sum); err != nil {
			return fmt.Errorf("job %s: resume from step %d: find holders: %w", job, step, err)
		}
		root := slices.Index(holders, 1)
		if root < 0 {
			return unavailable(step, tp, fmt.Errorf("job %s: resume from step %d: no replica of tp shard %d holds it: %w", job, step, tp, held))
		}
		n := len(tr.Model.Params().Data)
		buf := make([]float32, 3*n+1)
		if tr.layout.DPRank == root {
			copy(buf, state.Params)
			copy(buf[n:], state.M)
			copy(buf[2*n:], state.V)
			buf[3*n] = float32(state.Steps)
		}
		if err := tr.layout.DP.Broadcast(ctx, buf, root); err != nil {
			return fmt.Errorf("job %s: resume from step %d: broadcast from dp rank %d: %w", job, step, root, err)
		}
		fromReplica = held != nil
		state, held = State{Params: buf[:n], M: buf[n : 2*n], V: buf[2*n : 3*n], Steps: int(buf[3*n])}, nil
	}
	if held != nil {
		return unavailable(step, tp, held)
	}
	if err := tr.ImportState(state); err != nil {
		return fmt.Errorf("job %s: resume from step %d: %w", job, step, err)
	}
	tr.SetIter(step)
	bytes := 4 * int64(len(state.Params)+len(state.M)+len(state.V))
	jm.Loaded(time.Since(start), bytes, fromReplica || source == "peer")
	if fromReplica {
		source = "replica"
	}
	log.Info("checkpoint loaded", "job", job, "step", step, "source", source, "bytes", bytes, "seconds", time.Since(start).Seconds())
	return nil
}

// loadResharded builds this rank's state from a checkpoint of another TP
// size: every shard of the step (from this worker's store, else fetched
// from a holder and checked against the commit record), gathered into the
// whole model and cut into this rank's piece. Every rank does the same
// arithmetic on the same bytes, so data-parallel replicas start identical.
func (w *Worker) loadResharded(ctx context.Context, g *pb.Generation, job string, tr *Trainer, from int) (State, error) {
	step := int(g.ResumeStep)
	shards := make([]*ckpt.Shard, from)
	for t := range from {
		sh, err := w.cfg.Checkpoints.Get(job, step, t)
		if err != nil {
			holders, sum := w.resumeHolders(g, t)
			var ferr error
			if sh, _, ferr = transfer.Fetch(ctx, transfer.Request{Job: job, Step: step, TP: t, SHA256: sum}, holders, transfer.GRPCDialer(w.cfg.PeerCredentials)); ferr != nil {
				return State{}, fmt.Errorf("job %s: resume from step %d: tp shard %d of %d: %w (here: %v; holders: %v)", job, step, t, from, ckpt.ErrNotFound, err, ferr)
			}
		}
		shards[t] = sh
	}
	whole, err := ckpt.Gather(shards, ckpt.FullManifest(shards[0].Manifest))
	if err != nil {
		return State{}, fmt.Errorf("job %s: resume from step %d: %w", job, step, err)
	}
	mine, err := ckpt.Reshard(whole, ckpt.Manifest(tr.Model.Params().Views), tr.layout.TPRank, tr.layout.Mesh.TP)
	if err != nil {
		return State{}, fmt.Errorf("job %s: resume from step %d: %w", job, step, err)
	}
	return State{Params: mine.Data, M: mine.Optim.M, V: mine.Optim.V, Steps: mine.Optim.Steps}, nil
}

// load reads the resume step from this worker's checkpoint store, checking
// that the stored shard has this replica's exact layout.
func (w *Worker) load(job string, tr *Trainer, step int) (State, error) {
	sh, err := w.cfg.Checkpoints.Get(job, step, tr.layout.TPRank)
	if err != nil {
		return State{}, fmt.Errorf("job %s: resume from step %d: %w", job, step, err)
	}
	n := len(tr.Model.Params().Data)
	switch {
	case sh.TPSize != tr.layout.Mesh.TP:
		return State{}, fmt.Errorf("job %s: resume from step %d: stored shard is tp %d of %d, this generation needs tp %d of %d",
			job, step, sh.TP, sh.TPSize, tr.layout.TPRank, tr.layout.Mesh.TP)
	case !reflect.DeepEqual(sh.Manifest, ckpt.Manifest(tr.Model.Params().Views)):
		return State{}, fmt.Errorf("job %s: resume from step %d: stored tensors do not match this model's layout", job, step)
	case sh.Optim.Lo != 0 || sh.Optim.Hi != n:
		return State{}, fmt.Errorf("job %s: resume from step %d: stored optimizer state covers [%d,%d), want all %d parameters",
			job, step, sh.Optim.Lo, sh.Optim.Hi, n)
	}
	return State{Params: sh.Data, M: sh.Optim.M, V: sh.Optim.V, Steps: sh.Optim.Steps}, nil
}

// finish saves the final model on the rank that holds it whole after a
// tensor-parallel gather: DP rank 0 gathers its TP group's shards.
func (w *Worker) finish(ctx context.Context, a *pb.Assignment, tr *Trainer) error {
	if tr.layout.DPRank != 0 || w.cfg.OutDir == "" {
		return nil
	}
	full, err := tr.gatherFull(ctx)
	if err != nil {
		return fmt.Errorf("job %s: gather final model: %w", a.JobId, err)
	}
	if tr.layout.TPRank != 0 {
		return nil
	}
	dir := filepath.Join(w.cfg.OutDir, a.JobId)
	if err := SaveFull(dir, tr, full); err != nil {
		return err
	}
	w.log.Info("saved final model", "dir", dir)
	return nil
}

// checkpointUnavailable is a resume that found no correct copy of this
// rank's shard: not in its store, not at any holder. The coordinator then
// drops that checkpoint and the job resumes from the one before.
type checkpointUnavailable struct {
	step, tp int
	err      error
}

func (e *checkpointUnavailable) Error() string { return e.err.Error() }
func (e *checkpointUnavailable) Unwrap() error { return e.err }

// unavailable marks err as checkpointUnavailable when the shard is missing
// or corrupt (and returns other errors as they are).
func unavailable(step, tp int, err error) error {
	if errors.Is(err, ckpt.ErrNotFound) || errors.Is(err, ckpt.ErrCorrupt) {
		return &checkpointUnavailable{step: step, tp: tp, err: err}
	}
	return err
}
