package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// ProtocolVersion is the worker ↔ coordinator protocol this worker speaks.
const ProtocolVersion = 1

// Coordinator is what a worker needs from the coordinator group
// (*coord.Client, adapted in cmd/worker, provides it). Implementations find
// and follow the leader themselves.
type Coordinator interface {
	RegisterWorker(ctx context.Context, req *pb.RegisterWorkerRequest) (*pb.Worker, error)
	// OpenSession opens the worker session stream and returns it with the
	// first assignment.
	OpenSession(ctx context.Context, hello *pb.WorkerMessage) (Session, *pb.Assignment, error)
	ReportCheckpoint(ctx context.Context, req *pb.ReportCheckpointRequest) (committed bool, err error)
}

// Session is an open worker session: heartbeats out, assignments in.
type Session interface {
	Send(*pb.WorkerMessage) error
	Recv() (*pb.Assignment, error)
	Close()
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	ID       string            // unique worker id
	PeerAddr string            // gRPC address peers reach this worker's collective service at
	Cores    int               // advertised capacity
	Labels   map[string]string // free-form, shown by `ringctl workers`
	Peer     *allreduce.Server // this process's collective service (serving PeerAddr)
	Coord    Coordinator
	// Checkpoints is this worker's durable checkpoint store (its shards of
	// each job, fsynced before they are reported).
	Checkpoints *ckpt.Store
	// OutDir receives the final model of each job this worker finishes as
	// data-parallel rank 0, tensor-parallel rank 0 (OutDir/<job id>).
	OutDir string
	// Heartbeat is the interval between heartbeats (default 500 ms).
	Heartbeat time.Duration
	// PeerTimeout bounds every wait on a peer in a collective (default 10 s).
	PeerTimeout time.Duration
	Logger      *slog.Logger
}

// Worker is one training process of the cluster: it registers, keeps a
// session with the coordinator leader, and trains whatever generation of a
// job it is assigned, reacting to new generations.
type Worker struct {
	cfg WorkerConfig
	log *slog.Logger

	// progress for heartbeats, written by the training goroutine
	generation atomic.Uint64
	step       atomic.Int64
	loss       atomic.Uint64 // math.Float64bits
	tokensPS   atomic.Uint64

	mu    sync.Mutex
	fatal string // reported in the next heartbeat
}

// NewWorker checks the configuration.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	switch {
	case cfg.ID == "":
		return nil, errors.New("worker: id is required")
	case cfg.PeerAddr == "" || cfg.Peer == nil:
		return nil, errors.New("worker: a peer collective server and its address are required")
	case cfg.Coord == nil:
		return nil, errors.New("worker: a coordinator client is required")
	case cfg.Checkpoints == nil:
		return nil, errors.New("worker: a checkpoint store is required")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 500 * time.Millisecond
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.ID)}, nil
}

// Run registers the worker and serves assignments until ctx ends. Losing
// the coordinator (or its leader) does not stop training: the session is
// re-opened with backoff while the current generation keeps stepping.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.register(ctx); err != nil {
		return err
	}
	assignments := make(chan *pb.Assignment, 1)
	var wg sync.WaitGroup
	wg.Go(func() { w.sessionLoop(ctx, assignments) })
	defer wg.Wait()

	var (
		current *pb.Assignment
		cancel  context.CancelFunc = func() {}
		done    chan struct{}
	)
	stopCurrent := func() {
		cancel()
		if done != nil {
			<-done
			done = nil
		}
	}
	defer stopCurrent()
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-assignments:
			if sameGeneration(current, a) {
				continue
			}
			stopCurrent()
			current = a
			if a.GetJobId() == "" || a.GetRank() < 0 || a.GetGeneration() == nil {
				w.generation.Store(0)
				w.log.Info("idle", "job", a.GetJobId())
				continue
			}
			gctx, gcancel := context.WithCancel(ctx)
			cancel = gcancel // stopCurrent cancels it
			done = make(chan struct{})
			go func() {
				defer close(done)
				err := w.runGeneration(gctx, a)
				switch {
				case err == nil || gctx.Err() != nil:
				case isCollectiveFailure(err):
					// A peer died or stalled. The coordinator's failure
					// detector sees the dead worker's heartbeats stop and
					// commits a new generation; blaming the peer from here
					// would cascade (its own peers see it abort too).
					w.log.Warn("generation aborted by a collective failure; waiting for a new generation",
						"job", a.JobId, "generation", a.Generation.Number, "err", err)
				default:
					w.log.Error("generation failed", "job", a.JobId, "generation", a.Generation.Number, "err", err)
					w.setFatal(err)
				}
			}()
		}
	}
}

func isCollectiveFailure(err error) bool {
	var pe *allreduce.PeerError
	return errors.As(err, &pe) || errors.Is(err, allreduce.ErrPeerClosed) || errors.Is(err, allreduce.ErrPeerTimeout) ||
		errors.Is(err, allreduce.ErrClosed) || errors.Is(err, allreduce.ErrStaleGeneration) || errors.Is(err, allreduce.ErrUnknownGroup)
}

func sameGeneration(a, b *pb.Assignment) bool {
	return a != nil && b != nil && a.GetJobId() == b.GetJobId() && a.GetRank() == b.GetRank() &&
		a.GetGeneration().GetNumber() == b.GetGeneration().GetNumber()
}

func (w *Worker) register(ctx context.Context) error {
	req := &pb.RegisterWorkerRequest{
		WorkerId: w.cfg.ID, Address: w.cfg.PeerAddr, Cores: int32(w.cfg.Cores),
		Labels: w.cfg.Labels, ProtocolVersion: ProtocolVersion,
	}
	return retry(ctx, w.log, "register", func() error {
		_, err := w.cfg.Coord.RegisterWorker(ctx, req)
		return err
	})
}

// sessionLoop keeps a session open, forwarding assignments and sending heartbeats.
func (w *Worker) sessionLoop(ctx context.Context, out chan *pb.Assignment) {
	deliver := func(a *pb.Assignment) {
		select { // keep only the newest assignment
		case <-out:
		default:
		}
		out <- a
	}
	// The stream outlives ctx by a moment so that the last heartbeat can say
	// the worker is leaving.
	streamCtx, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStreams()
	for ctx.Err() == nil {
		var sess Session
		err := retry(ctx, w.log, "open session", func() error {
			s, first, err := w.cfg.Coord.OpenSession(streamCtx, w.heartbeat())
			if err != nil {
				return err
			}
			sess = s
			deliver(first)
			return nil
		})
		if err != nil {
			return // ctx done
		}
		recvDone := make(chan error, 1)
		go func() {
			for {
				a, err := sess.Recv()
				if err != nil {
					recvDone <- err
					return
				}
				deliver(a)
			}
		}()
		tick := time.NewTicker(w.cfg.Heartbeat)
	beat:
		for {
			select {
			case <-ctx.Done():
				// Shutting down: say so, so the coordinator re-plans the
				// job now instead of after the heartbeat timeout.
				leave := w.heartbeat()
				leave.Leaving = true
				_ = sess.Send(leave)
				break beat
			case err := <-recvDone:
				w.log.Warn("session lost; reconnecting", "err", err)
				break beat
			case <-tick.C:
				if err := sess.Send(w.heartbeat()); err != nil {
					w.log.Warn("heartbeat failed; reconnecting", "err", err)
					break beat
				}
			}
		}
		tick.Stop()
		sess.Close()
	}
}

func (w *Worker) heartbeat() *pb.WorkerMessage {
	w.mu.Lock()
	fatal := w.fatal
	w.fatal = ""
	w.mu.Unlock()
	return &pb.WorkerMessage{
		WorkerId:     w.cfg.ID,
		Generation:   w.generation.Load(),
		Step:         w.step.Load(),
		Loss:         math.Float64frombits(w.loss.Load()),
		TokensPerSec: math.Float64frombits(w.tokensPS.Load()),
		FatalError:   fatal,
	}
}

func (w *Worker) setFatal(err error) {
	w.mu.Lock()
	w.fatal = err.Error()
	w.mu.Unlock()
}

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
	join := func(name string, index int, peers []string) (*allreduce.Communicator, error) {
		tr, err := w.cfg.Peer.Join(allreduce.GroupConfig{
			Job: name, Generation: gen.Number, Rank: index, Peers: peers, PeerTimeout: w.cfg.PeerTimeout,
		})
		if err != nil {
			return nil, err
		}
		c := allreduce.New(tr, allreduce.Options{Logger: log})
		comms = append(comms, c)
		return c, nil
	}
	if mesh.DP > 1 {
		peers := peerAddresses(addrs, mesh.DPGroup(int(me.Tp)))
		if layout.DP, err = join(fmt.Sprintf("%s/dp/tp%d", a.JobId, me.Tp), int(me.Dp), peers); err != nil {
			return err
		}
	}
	if mesh.TP > 1 {
		peers := peerAddresses(addrs, mesh.TPGroup(int(me.Dp)))
		if layout.TP, err = join(fmt.Sprintf("%s/tp/dp%d", a.JobId, me.Dp), int(me.Tp), peers); err != nil {
			return err
		}
	}
	tr, err := NewReplica(spec, layout)
	if err != nil {
		return fmt.Errorf("job %s: %w", a.JobId, err)
	}
	if gen.ResumeStep > 0 {
		if err := w.resume(ctx, a.JobId, tr, int(gen.ResumeStep)); err != nil {
			return err
		}
	}
	w.generation.Store(gen.Number)
	log.Info("training", "from_step", tr.Iter(), "dp_size", mesh.DP, "tp_size", mesh.TP, "reason", gen.Reason)

	t := spec.Train
	var window []time.Duration
	var prof stepProfile
	for tr.Iter() < t.MaxIters {
		start := time.Now()
		st, err := tr.Step(ctx)
		if err != nil {
			return err
		}
		prof.add(time.Since(start), st)
		window = append(window, time.Since(start))
		if len(window) > 20 {
			window = window[1:]
		}
		w.step.Store(int64(tr.Iter()))
		w.loss.Store(math.Float64bits(st.Loss))
		w.tokensPS.Store(math.Float64bits(float64(st.Tokens*mesh.DP) / median(window).Seconds()))
		if st.Iter%t.LogInterval == 0 {
			log.Info("step", "iter", st.Iter, "loss", st.Loss, "lr", st.LR)
		}
		if iv := spec.Checkpoint.Interval; iv > 0 && tr.Iter()%iv == 0 && tr.Iter() < t.MaxIters {
			w.checkpoint(ctx, a, tr, false)
		}
	}
	if err := w.finish(ctx, a, tr); err != nil {
		return err
	}
	w.checkpoint(ctx, a, tr, true)
	log.Info("finished", append([]any{"iters", tr.Iter(), "optimizer_bytes", tr.OptimizerBytes()}, prof.summary()...)...)
	<-ctx.Done() // wait for the coordinator to move this worker on
	return nil
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

// peerAddresses lists the addresses of a group's ranks, in group order.
func peerAddresses(addrs []string, group []int) []string {
	peers := make([]string, len(group))
	for i, r := range group {
		peers[i] = addrs[r]
	}
	return peers
}

// checkpoint writes this worker's shard of the state at the current step
// to its store (fsynced) and reports it in the background: a slow or
// leaderless coordinator must not stall training. A failed write is logged
// and not reported, so the coordinator never commits a step this worker
// does not hold.
func (w *Worker) checkpoint(ctx context.Context, a *pb.Assignment, tr *Trainer, final bool) {
	p, opt := tr.Model.Params(), tr.opt
	shard := &ckpt.Shard{
		Job: a.JobId, Step: tr.Iter(), Generation: a.Generation.Number,
		TP: tr.layout.TPRank, TPSize: tr.layout.Mesh.TP, Spec: a.SpecJson,
		Manifest: ckpt.Manifest(p.Views), Data: p.Data,
		Optim: ckpt.Optim{Lo: opt.Lo, Hi: opt.Hi, M: opt.M, V: opt.V, Steps: opt.Steps},
		Iter:  tr.Iter(),
	}
	store := w.cfg.Checkpoints
	if err := store.Put(shard); err != nil {
		w.log.Error("checkpoint not written", "job", a.JobId, "step", shard.Step, "err", err)
		return
	}
	keep := max(tr.Spec.Checkpoint.Keep, 2) // the committed one may lag the newest
	if _, err := store.Retain(a.JobId, keep); err != nil {
		w.log.Warn("checkpoint retention", "job", a.JobId, "err", err)
	}
	req := &pb.ReportCheckpointRequest{
		WorkerId: w.cfg.ID, JobId: a.JobId, Generation: a.Generation.Number,
		Step: int64(shard.Step), Tp: int32(shard.TP), Final: final,
	}
	go func() {
		_ = retry(ctx, w.log, "report checkpoint", func() error {
			_, err := w.cfg.Coord.ReportCheckpoint(ctx, req)
			return err
		})
	}()
}

// resume positions the replica at the generation's resume step. A rank
// that holds that checkpoint loads it from its store; in a data-parallel
// group, the lowest rank holding it broadcasts it to the others (a worker
// that just joined holds nothing yet), so every replica starts identical.
func (w *Worker) resume(ctx context.Context, job string, tr *Trainer, step int) error {
	state, held := w.load(job, tr, step)
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
			return fmt.Errorf("job %s: resume from step %d: no replica of tp shard %d holds it: %w", job, step, tr.layout.TPRank, held)
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
		state, held = State{Params: buf[:n], M: buf[n : 2*n], V: buf[2*n : 3*n], Steps: int(buf[3*n])}, nil
	}
	if held != nil {
		return held
	}
	if err := tr.ImportState(state); err != nil {
		return fmt.Errorf("job %s: resume from step %d: %w", job, step, err)
	}
	tr.SetIter(step)
	return nil
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

// retry calls f until it succeeds or ctx ends, with capped exponential backoff.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		log.Debug(what+" failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
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
