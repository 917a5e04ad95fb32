package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/netlab"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Real processes on separate network stacks: three workers, each in its own
// network namespace, the coordinators in the test's. Worker w1 is cut off
// from both peers but not from the coordinators, so its heartbeats keep
// arriving. Both ends of each cut link time out in the collective, probe
// their peers and report each other; the leader takes w1 out (it alone is
// on both cut links) and the other two train on. While the cut lasts w1 is
// held out (its heartbeats do not put it back). After healing, the job takes
// it back and completes.
func TestClusterWorkerCutOffFromPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	lab, err := netlab.New(fmt.Sprintf("rml%d", os.Getpid()%10000), 1, 3)
	if errors.Is(err, netlab.ErrUnsupported) {
		t.Skipf("network partitions: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	c := startClusterWith(t, Config{Workers: 3, WorkerTimeout: 2 * time.Second,
		CoordHost:  lab.HostAddr(),
		WorkerNet:  func(i int) (string, []string) { return lab.Addr(i), lab.Prefix(i) },
		WorkerArgs: []string{"--peer-timeout", "2s"}})
	spec := smallSpec(t, "train.max_iters=100000", "parallel.min_workers=2", "checkpoint.interval=20")
	cl, job := submit(t, c, spec)
	members := jobMembers
	poll := func(what string, limit time.Duration, cond func(*pb.GetJobResponse) bool) *pb.GetJobResponse {
		t.Helper()
		return pollJob(t, cl, job.Id, what, limit, cond)
	}
	before := poll("three workers training", 2*time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w1,w2,w3" && r.Job.CommittedStep >= 20
	})

	cutAt := time.Now()
	for _, j := range []int{1, 2} {
		if err := lab.Cut(0, j); err != nil {
			t.Fatal(err)
		}
	}
	after := poll("a generation without w1", time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w2,w3"
	})
	t.Logf("cut at committed step %d; generation %d without w1 after %v", before.Job.CommittedStep, after.Job.Generation, time.Since(cutAt).Round(time.Millisecond))
	w1 := func() *pb.Worker {
		ws, err := cl.ListWorkers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.Id == "w1" {
				return w
			}
		}
		t.Fatal("w1 is not listed")
		return nil
	}
	// The leader may act on the first link reported from both ends.
	if w := w1(); w.State != pb.WorkerState_WORKER_STATE_LOST || !strings.Contains(w.Reason, "cut off from peers w") {
		t.Errorf("w1 after the cut: %v %q, want lost: cut off from peers", w.State, w.Reason)
	}
	// The two that stay train on: a checkpoint past the new generation's
	// resume step commits.
	resumed := poll("w2 and w3 commit a checkpoint", time.Minute, func(r *pb.GetJobResponse) bool {
		return r.Job.CommittedStep > after.Generation.GetResumeStep()
	})
	if m := members(resumed); m != "w2,w3" && m != "w1,w2,w3" {
		t.Errorf("members while cut: %s", m)
	}

	for _, j := range []int{1, 2} {
		if err := lab.Heal(0, j); err != nil {
			t.Fatal(err)
		}
	}
	healed := poll("w1 training again after healing", 3*time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w1,w2,w3" && r.Job.CommittedStep > r.Generation.GetResumeStep()
	})
	t.Logf("healed: generation %d with all three at committed step %d", healed.Job.Generation, healed.Job.CommittedStep)
	for _, p := range c.Workers {
		if !p.Running() {
			t.Errorf("worker %s exited", p.Name)
		}
	}
}
