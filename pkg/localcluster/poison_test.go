package localcluster

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Real processes: a job too big for the workers' memory (a valid spec:
// 8.2e11 parameters, some 13 TB with gradients and AdamW) used to be
// handed to every worker, each of which died in the allocator, forever.
// Now submit refuses it against the memory the workers registered; and a
// job submitted while no worker is up (nothing to check against) is
// refused by each worker before it allocates: the job fails naming the
// memory it needs and the fields to lower, every worker stays up, and the
// next job trains on the same workers.
func TestClusterPoisonJobFailsAndWorkersSurvive(t *testing.T) {
	c := startCluster(t, 2)
	poison := smallSpec(t, "model.n_embd=32768", "model.n_head=32", "model.n_layer=64",
		"parallel.max_workers=2", "parallel.min_workers=2")
	cl := c.Client()
	defer cl.Close()
	waitFor(t, "both workers registered", 30*time.Second, func() bool {
		ws, err := cl.ListWorkers(context.Background())
		return err == nil && len(ws) == 2
	})
	_, err := cl.SubmitJob(context.Background(), poison.Marshal())
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "memory:") || !strings.Contains(err.Error(), "registered worker") {
		t.Fatalf("submit of a job that fits no registered worker: %v, want InvalidArgument naming the memory", err)
	}
	if jobs, err := cl.ListJobs(context.Background()); err != nil || len(jobs) != 0 {
		t.Fatalf("a refused submit left jobs %v (%v)", jobs, err)
	}

	// Submitted with every worker down, the job is admitted; the workers
	// check it themselves when they come back.
	for _, w := range c.Workers {
		w.Signal(syscall.SIGKILL)
		w.Wait()
	}
	waitFor(t, "both workers lost", 30*time.Second, func() bool {
		ws, err := cl.ListWorkers(context.Background())
		if err != nil {
			return false
		}
		for _, w := range ws {
			if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
				return false
			}
		}
		return true
	})
	_, job := submit(t, c, poison)
	for _, w := range c.Workers {
		if err := c.Restart(w); err != nil {
			t.Fatal(err)
		}
	}
	end := waitJob(t, c, job.Id, 2*time.Minute, nil)
	if end.State != pb.JobState_JOB_STATE_FAILED {
		t.Fatalf("poison job ended %v (%s), want failed", end.State, end.Reason)
	}
	for _, want := range []string{"memory:", "per worker", "lower model.n_layer"} {
		if !strings.Contains(end.Reason, want) {
			t.Errorf("poison job's reason %q does not contain %q", end.Reason, want)
		}
	}
	for _, w := range c.Workers {
		if !w.Running() {
			t.Errorf("worker %s exited after the poison job", w.Name)
		}
	}

	good := smallSpec(t, "train.max_iters=100", "parallel.max_workers=2", "parallel.min_workers=2")
	_, next := submit(t, c, good)
	if end := waitJob(t, c, next.Id, 3*time.Minute, nil); end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job after the poison one ended %v: %s", end.State, end.Reason)
	}
	ws, err := cl.ListWorkers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.State == pb.WorkerState_WORKER_STATE_LOST {
			t.Errorf("worker %s is lost (%s) after the poison job", w.Id, w.Reason)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
