package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
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
	// Memory is the bytes a job's replica may use on this worker (0: what
	// the machine or its cgroup has free when a generation starts). A
	// generation whose estimate does not fit fails the job before anything
	// is allocated, instead of the OOM killer ending the worker.
	Memory int64
	// Registerer receives the worker's training, checkpoint and
	// communication series (nil: none are registered).
	Registerer prometheus.Registerer
	// PeakFLOPS is this worker's peak FLOP/s, the MFU denominator (0: MFU
	// is not exported).
	PeakFLOPS float64
	// Compute is how every job's model runs on this worker: the GEMM (a
	// kernels.Impl the caller owns and closes) and the layer threads. A nil
	// GEMM: each generation's trainer makes its own.
	Compute model.Compute
	// PeerCredentials are the transport credentials for dialing a peer
	// worker's PeerCheckpoints service, expecting that worker's identity
	// (nil: plaintext).
	PeerCredentials func(workerID string) grpc.DialOption
	Logger          *slog.Logger
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
	stepSecs   atomic.Uint64 // recent median step time
	compute    atomic.Uint64 // its compute part (straggler score)
	valLoss    atomic.Uint64 // latest evaluation (NaN: none yet)
	ready      atomic.Bool   // a session with the coordinator is open

	metrics *metrics.Training
	saver   saver // checkpoint writes in the background, one at a time

	assigned   atomic.Pointer[pb.Assignment]       // the current assignment, for offers
	jobMetrics atomic.Pointer[metrics.JobTraining] // the current generation's series
	copies     copyState                           // replicas being fetched from peers

	mu     sync.Mutex
	fatal  string   // reported in the next heartbeat
	broken recovery // when the current generation broke, until the next one steps
	// peers of an aborted generation this worker could not reach, for
	// the next heartbeat while that generation is still the current one
	unreachable struct {
		generation uint64
		peers      []string
	}
	// the current generation's resume checkpoint, which this worker could
	// not get a correct copy of (nil: none)
	unavailable *pb.CheckpointUnavailable
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
	w := &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), metrics: metrics.NewTraining(cfg.Registerer, cfg.PeakFLOPS)}
	storeFloat(&w.valLoss, math.NaN())
	return w, nil
}

// Ready reports whether the worker has a session open with the coordinator
// leader (what /readyz answers): it can be given work and report progress.
func (w *Worker) Ready() bool { return w.ready.Load() }

// Run registers the worker and serves assignments until ctx ends. Losing
// the coordinator (or its leader) does not stop training: the session is
// re-opened with backoff while the current generation keeps stepping.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.register(ctx); err != nil {
		return err
	}
	defer w.saver.wait() // last: the store must outlive a background save
	w.copies.mu.Lock()
	w.copies.ctx = ctx
	w.copies.mu.Unlock()
	defer w.copies.stop()
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
			if current.GetJobId() != "" && current.GetJobId() == a.GetJobId() && current.GetRank() >= 0 {
				// The coordinator replaced our generation (a peer was lost,
				// one joined): recovery runs from here unless a collective
				// failure already marked it.
				w.markBroken(current.JobId, int(w.step.Load()))
			}
			stopCurrent()
			current = a
			w.assigned.Store(a)
			w.mu.Lock()
			w.unavailable = nil
			w.mu.Unlock()
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
				err := w.runContained(gctx, a)
				var cu *checkpointUnavailable
				switch {
				case err == nil || gctx.Err() != nil:
				case errors.As(err, &cu):
					// Not this job's fault: the coordinator drops the
					// checkpoint and resumes everyone from the previous one.
					w.log.Error("no correct copy of the resume checkpoint here or at any holder; asking the coordinator to resume from the previous committed checkpoint",
						"job", a.JobId, "generation", a.Generation.Number, "step", cu.step, "tp", cu.tp, "err", cu.err)
					w.mu.Lock()
					w.unavailable = &pb.CheckpointUnavailable{Generation: a.Generation.Number, Step: int64(cu.step), Tp: int32(cu.tp), Reason: cu.err.Error()}
					w.mu.Unlock()
				case isCollectiveFailure(err):
					w.markBroken(a.JobId, int(w.step.Load()))
					// A peer died, stalled, or the network between us
					// failed. The coordinator's failure detector sees a
					// dead or paused worker's heartbeats stop; a cut link
					// it cannot see, so the peers are probed and the ones
					// that do not answer are reported (see probePeers).
					w.log.Warn("generation aborted by a collective failure; waiting for a new generation",
						"job", a.JobId, "generation", a.Generation.Number, "err", err)
					if down := w.probePeers(gctx, a); len(down) > 0 {
						w.log.Warn("peers unreachable after the collective failure; reporting them", "job", a.JobId,
							"generation", a.Generation.Number, "peers", down)
						w.mu.Lock()
						w.unreachable.generation, w.unreachable.peers = a.Generation.Number, down
						w.mu.Unlock()
					}
				default:
					w.log.Error("generation failed", "job", a.JobId, "generation", a.Generation.Number, "err", err)
					w.setFatal(err)
				}
			}()
		}
	}
}

// runContained runs a generation and turns a panic in it (a bug, or a spec
// the model builder cannot handle) into an error that fails the job: the
// worker survives to take the next job, and the job is not handed out again
// to crash the next worker. Panics in the layers' helper goroutines are not
// caught here; those end the process.
func (w *Worker) runContained(ctx context.Context, a *pb.Assignment) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("generation panicked; failing the job", "job", a.GetJobId(),
				"generation", a.GetGeneration().GetNumber(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("job %s generation %d: worker %s panicked: %v", a.GetJobId(), a.GetGeneration().GetNumber(), w.cfg.ID, r)
		}
	}()
	return w.runGeneration(ctx, a)
}

// probePeers opens a TCP connection to every other rank of a's generation
// and returns the workers that did not accept one within the probe time.
// That is evidence about the network, not about the peer: a crashed peer
// refuses (its session breaking tells the leader more), a paused one's
// kernel still accepts, and a cut link times out on both of its ends. The
// leader acts only on links reported from both ends, so a report alone
// never takes a worker out (a collective failure cascades along the ring,
// and blaming the next rank would take out the wrong one).
func (w *Worker) probePeers(ctx context.Context, a *pb.Assignment) []string {
	timeout := min(w.cfg.PeerTimeout, 2*time.Second)
	var (
		mu   sync.Mutex
		down []string
		wg   sync.WaitGroup
	)
	for _, r := range a.GetGeneration().GetRanks() {
		if r.WorkerId == w.cfg.ID || r.Address == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, "tcp", r.Address)
			if err == nil {
				c.Close()
				return
			}
			if ctx.Err() != nil {
				return
			}
			mu.Lock()
			down = append(down, r.WorkerId)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(down)
	return slices.Compact(down)
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
