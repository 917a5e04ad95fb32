package localcluster

import (
	"context"
	"strings"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Real processes: a job too big for the workers' memory (a valid spec:
// 8.2e11 parameters, some 13 TB with gradients and AdamW) used to be
// handed to every worker, each of which died in the allocator, forever.
// Now each worker checks the estimate before allocating: the job fails
// naming the memory it needs and the fields to lower, every worker stays
// up, and the next job trains on the same workers.
func TestClusterPoisonJobFailsAndWorkersSurvive(t *testing.T) {
	c := startCluster(t, 2)
	poison := smallSpec(t, "model.n_embd=32768", "model.n_head=32", "model.n_layer=64",
		"parallel.max_workers=2", "parallel.min_workers=2")
	_, job := submit(t, c, poison)
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
	cl, next := submit(t, c, good)
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
