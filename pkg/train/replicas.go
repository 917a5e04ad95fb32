package train

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt/transfer"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Checkpoint replicas (checkpoint.replicas). After writing its shard of a
// step, a worker offers it to the peers its generation's copy plan names
// (pb.Generation.replica_copies); a peer that accepts fetches it in the
// background over PeerCheckpoints, stores it durably and reports itself as
// a holder, with the shard's checksum. The coordinator commits the step
// once every shard has enough holders with one checksum. A rank that must
// resume from a shard it does not hold (a newcomer, a replacement for a
// worker lost for good, a worker whose copy is corrupt) fetches it from
// the holders the generation names.

// Offer takes a peer's offer of a new shard (the PeerCheckpoints service
// calls it): accepted only for this worker's current generation, only from
// the rank the copy plan names as the source of a copy to this worker, and
// from that worker itself when calls carry certificates. The fetch runs in
// the background; the peer's call returns at once.
func (w *Worker) Offer(ctx context.Context, req *pb.OfferShardRequest) error {
	a := w.assigned.Load()
	g := a.GetGeneration()
	if a == nil || a.JobId != req.Job || g.GetNumber() != req.Generation {
		return status.Errorf(codes.FailedPrecondition, "worker %s is not in generation %d of job %s (it is in generation %d of job %q)",
			w.cfg.ID, req.Generation, req.Job, g.GetNumber(), a.GetJobId())
	}
	if caller := tlsauth.Caller(ctx); caller.Name != "" && caller.Name != req.WorkerId {
		return status.Errorf(codes.PermissionDenied, "offer names worker %s but the caller's certificate is %s", req.WorkerId, caller.Name)
	}
	var from *pb.Rank
	for _, c := range g.ReplicaCopies {
		src, dst := g.Ranks[c.From], g.Ranks[c.To]
		if src.WorkerId == req.WorkerId && dst.WorkerId == w.cfg.ID && src.Tp == req.Tp {
			from = src
		}
	}
	if from == nil {
		return status.Errorf(codes.PermissionDenied, "generation %d of job %s names no copy of tp shard %d from worker %s to worker %s",
			req.Generation, req.Job, req.Tp, req.WorkerId, w.cfg.ID)
	}
	w.copies.mu.Lock()
	defer w.copies.mu.Unlock()
	if w.copies.closed || w.copies.ctx == nil {
		return status.Error(codes.Unavailable, "worker is shutting down")
	}
	w.copies.wg.Add(1)
	go func() {
		defer w.copies.wg.Done()
		ctx := w.copies.ctx
		holder := []transfer.Holder{{ID: from.WorkerId, Address: from.Address}}
		info, err := w.fetchShard(ctx, req.Job, int(req.Step), int(req.Tp), req.Checksum, holder, metrics.TransferCopy)
		if err != nil {
			w.log.Warn("checkpoint replica not copied; the step commits only with enough copies", "job", req.Job, "step", req.Step, "tp", req.Tp, "from", req.WorkerId, "err", err)
			return
		}
		if _, err := w.cfg.Checkpoints.Retain(req.Job, max(specKeep(a), 2)); err != nil {
			w.log.Warn("checkpoint retention", "job", req.Job, "err", err)
		}
		w.report(ctx, &pb.ReportCheckpointRequest{WorkerId: w.cfg.ID, JobId: req.Job, Generation: req.Generation,
			Step: req.Step, Tp: req.Tp, Checksum: info.SHA256, Bytes: info.Bytes})
	}()
	return nil
}

// fetchShard fetches a shard from holders, checks it against sum (the
// commit record's, or the offer's), stores it durably and returns its
// stored description.
func (w *Worker) fetchShard(ctx context.Context, job string, step, tp int, sum []byte, holders []transfer.Holder, kind string) (ckpt.Info, error) {
	sh, stats, err := transfer.Fetch(ctx, transfer.Request{Job: job, Step: step, TP: tp, SHA256: sum}, holders, transfer.GRPCDialer(w.cfg.PeerCredentials))
	if err != nil {
		return ckpt.Info{}, err
	}
	if err := w.cfg.Checkpoints.Put(sh); err != nil {
		return ckpt.Info{}, fmt.Errorf("store fetched shard: %w", err)
	}
	info, err := w.cfg.Checkpoints.Stat(job, step, tp)
	if err != nil {
		return ckpt.Info{}, err
	}
	if sum != nil && !slices.Equal(info.SHA256, sum) { // cannot happen unless the store re-encodes differently
		return ckpt.Info{}, fmt.Errorf("stored copy has sha256 %x, want %x", info.SHA256, sum)
	}
	if jm := w.jobMetrics.Load(); jm != nil {
		jm.PeerTransfer(kind, stats.Duration, stats.Bytes)
	}
	w.log.Info("checkpoint shard received from a peer", "kind", kind, "job", job, "step", step, "tp", tp,
		"from", stats.From, "bytes", stats.Bytes, "seconds", stats.Duration.Seconds(),
		"mb_per_s", float64(stats.Bytes)/1e6/max(stats.Duration.Seconds(), 1e-9), "failed_holders", stats.Failures)
	return info, nil
}

// offerCopies offers a freshly stored shard to the peers the generation's
// copy plan names for this rank. A peer that cannot be reached costs this
// step its commit (too few copies), never the training.
func (w *Worker) offerCopies(ctx context.Context, a *pb.Assignment, shard *ckpt.Shard, sum []byte) {
	g := a.GetGeneration()
	for _, c := range g.GetReplicaCopies() {
		if c.From != a.Rank {
			continue
		}
		to := g.Ranks[c.To]
		req := &pb.OfferShardRequest{Job: shard.Job, Generation: g.Number, Step: int64(shard.Step), Tp: int32(shard.TP), WorkerId: w.cfg.ID, Checksum: sum}
		err := func() error {
			octx, cancel := context.WithTimeout(ctx, w.cfg.PeerTimeout)
			defer cancel()
			cl, closeConn, err := transfer.GRPCDialer(w.cfg.PeerCredentials)(octx, transfer.Holder{ID: to.WorkerId, Address: to.Address})
			if err != nil {
				return err
			}
			defer closeConn()
			_, err = cl.OfferShard(octx, req)
			return err
		}()
		if err != nil && ctx.Err() == nil {
			w.log.Warn("checkpoint replica not offered; this step will not commit", "job", shard.Job, "step", shard.Step, "to", to.WorkerId, "err", err)
		}
	}
}

// report tells the coordinator this worker holds a shard durably, retrying
// in the background until it is heard or ctx ends.
func (w *Worker) report(ctx context.Context, req *pb.ReportCheckpointRequest) {
	go func() {
		_ = retry(ctx, w.log, "report checkpoint", func() error {
			_, err := w.cfg.Coord.ReportCheckpoint(ctx, req)
			return err
		})
	}()
}

// resumeHolders lists the workers other than this one that the generation
// says hold tp shard tp of its resume step, and the shard's checksum.
func (w *Worker) resumeHolders(g *pb.Generation, tp int) ([]transfer.Holder, []byte) {
	for _, sh := range g.GetResumeFrom() {
		if int(sh.Tp) != tp {
			continue
		}
		var hs []transfer.Holder
		for i, id := range sh.WorkerIds {
			if id != w.cfg.ID && i < len(sh.Addresses) {
				hs = append(hs, transfer.Holder{ID: id, Address: sh.Addresses[i]})
			}
		}
		return hs, sh.Checksum
	}
	return nil, nil
}

// copyState is the background copies' lifetime: they run until the worker
// stops, and the store outlives them (Worker.Run waits for them).
type copyState struct {
	ctx    context.Context
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// stop refuses new offers and waits for the copies in flight.
func (c *copyState) stop() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}

// specKeep is the job's checkpoint.keep.
func specKeep(a *pb.Assignment) int {
	spec, err := jobspec.Parse(a.GetSpecJson())
	if err != nil {
		return 3
	}
	return spec.Checkpoint.Keep
}
