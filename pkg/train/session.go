package train

import (
	"context"
	"math"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

func (w *Worker) register(ctx context.Context) error {
	req := &pb.RegisterWorkerRequest{
		WorkerId: w.cfg.ID, Address: w.cfg.PeerAddr, Cores: int32(w.cfg.Cores),
		Labels: w.cfg.Labels, ProtocolVersion: ProtocolVersion, MemoryBytes: w.memoryBytes(),
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
			w.ready.Store(true)
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
		w.ready.Store(false)
		sess.Close()
	}
}

func (w *Worker) heartbeat() *pb.WorkerMessage {
	w.mu.Lock()
	fatal := w.fatal
	w.fatal = ""
	gen := w.generation.Load()
	var unreachable []string
	if w.unreachable.generation == gen {
		unreachable = w.unreachable.peers
	}
	w.unreachable.peers = nil
	unavailable := w.unavailable // repeated until a new generation comes
	w.mu.Unlock()
	m := &pb.WorkerMessage{
		WorkerId:              w.cfg.ID,
		Generation:            gen,
		Step:                  w.step.Load(),
		Loss:                  math.Float64frombits(w.loss.Load()),
		TokensPerSec:          math.Float64frombits(w.tokensPS.Load()),
		StepSeconds:           math.Float64frombits(w.stepSecs.Load()),
		ComputeSeconds:        math.Float64frombits(w.compute.Load()),
		FatalError:            fatal,
		UnreachablePeers:      unreachable,
		CheckpointUnavailable: unavailable,
	}
	if v := math.Float64frombits(w.valLoss.Load()); !math.IsNaN(v) {
		m.ValLoss = &v
	}
	return m
}

func (w *Worker) setFatal(err error) {
	w.mu.Lock()
	w.fatal = err.Error()
	w.mu.Unlock()
}
