package localcluster

import (
	"context"
	"syscall"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Real processes: a worker paused (SIGSTOP) past the heartbeat timeout is
// marked lost; once it resumes (SIGCONT) its heartbeats on the same,
// still-open session make it alive again, a spare for the next generation,
// instead of idling as "lost" until its process restarts.
func TestClusterPausedWorkerComesBack(t *testing.T) {
	c := startCluster(t, 2)
	cl := c.Client()
	defer cl.Close()
	paused := c.Workers[1]
	state := func() *pb.Worker {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, err := cl.ListWorkers(ctx)
		if err != nil {
			return nil
		}
		for _, w := range ws {
			if w.Id == paused.Name {
				return w
			}
		}
		return nil
	}
	waitState := func(want pb.WorkerState, limit time.Duration) *pb.Worker {
		t.Helper()
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			if w := state(); w != nil && w.State == want {
				return w
			}
			time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
		}
		t.Fatalf("worker %s not %v within %v (now %v)", paused.Name, want, limit, state())
		return nil
	}
	waitState(pb.WorkerState_WORKER_STATE_ALIVE, time.Minute)
	paused.Signal(syscall.SIGSTOP)
	lost := waitState(pb.WorkerState_WORKER_STATE_LOST, time.Minute)
	t.Logf("paused worker lost: %s", lost.Reason)
	paused.Signal(syscall.SIGCONT)
	back := waitState(pb.WorkerState_WORKER_STATE_ALIVE, 30*time.Second)
	t.Logf("resumed worker: %v (%s)", back.State, back.Reason)
	if !paused.Running() {
		t.Errorf("worker %s exited", paused.Name)
	}
}
