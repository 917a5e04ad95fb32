package localcluster

import (
	"context"
	"slices"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// A cluster in containers on a private Docker network, each process with a
// network stack of its own. Two partitions by `docker network disconnect`:
//
//   - the raft leader: the majority elects another leader and the job
//     commits checkpoints through it (workers follow); the old leader,
//     reconnected, is a follower of the new one, and all three are voters;
//   - a training worker, for longer than the worker timeout: the job
//     re-forms without it and trains on; reconnected, it is taken back and
//     trains again, its process never restarted.
func TestContainersPartitionLeaderAndWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	if !ContainersAvailable(context.Background()) {
		t.Skip("no Docker engine answers here (docker info)")
	}
	c := startClusterWith(t, Config{Workers: 3, WorkerTimeout: 2 * time.Second, Containers: true})
	spec := smallSpec(t, "train.max_iters=1000000", "parallel.min_workers=2", "checkpoint.interval=20")
	cl, job := submit(t, c, spec)
	members := jobMembers
	poll := func(what string, limit time.Duration, cond func(*pb.GetJobResponse) bool) *pb.GetJobResponse {
		t.Helper()
		return pollJob(t, cl, job.Id, what, limit, cond)
	}
	statusAt := func(addr string) (*pb.StatusResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cl.StatusAt(ctx, addr)
	}
	before := poll("three workers training", 2*time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w1,w2,w3" && r.Job.CommittedStep >= 20
	})

	// The leader, off the network.
	st, err := cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	old := c.proc(t, st.LeaderId)
	cutAt := time.Now()
	if err := c.Disconnect(old); err != nil {
		t.Fatal(err)
	}
	var others []string
	for i, p := range c.Coordinators {
		if p != old {
			others = append(others, c.CoordAddrs[i])
		}
	}
	var newLeader string
	for deadline := time.Now().Add(time.Minute); newLeader == ""; {
		for _, a := range others {
			if s, err := statusAt(a); err == nil && s.RaftState == "Leader" && s.Term > st.Term {
				newLeader = s.NodeId
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader among %v within a minute of cutting off %s", others, old.Name)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	t.Logf("leader %s cut off at committed step %d; %s leads after %v", old.Name, before.Job.CommittedStep, newLeader, time.Since(cutAt).Round(time.Millisecond))
	served := poll("a checkpoint committed through the new leader", time.Minute, func(r *pb.GetJobResponse) bool {
		return r.Job.CommittedStep > before.Job.CommittedStep+40
	})
	t.Logf("committed step %d while %s was cut off", served.Job.CommittedStep, old.Name)
	if err := c.Reconnect(old); err != nil {
		t.Fatal(err)
	}
	oldAddr := c.CoordAddrs[slices.Index(c.Coordinators, old)]
	for deadline := time.Now().Add(time.Minute); ; {
		s, err := statusAt(oldAddr)
		voters := 0
		for _, m := range s.GetMembers() {
			if m.Suffrage == "voter" {
				voters++
			}
		}
		if err == nil && s.RaftState == "Follower" && s.LeaderId != "" && s.LeaderId != old.Name && voters == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s reconnected: still %v (%v), want a follower of the new leader with 3 voters", old.Name, s, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}

	// A training worker, off the network for longer than the worker timeout.
	r := poll("three workers training again", 2*time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w1,w2,w3" && r.Job.CommittedStep > r.Generation.GetResumeStep()
	})
	w := c.proc(t, "w2")
	cutAt = time.Now()
	if err := c.Disconnect(w); err != nil {
		t.Fatal(err)
	}
	after := poll("a generation without w2", time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w1,w3"
	})
	t.Logf("w2 cut off at generation %d; generation %d without it after %v", r.Job.Generation, after.Job.Generation, time.Since(cutAt).Round(time.Millisecond))
	poll("w1 and w3 commit a checkpoint", time.Minute, func(r *pb.GetJobResponse) bool {
		return r.Job.CommittedStep > after.Generation.GetResumeStep()
	})
	if err := c.Reconnect(w); err != nil {
		t.Fatal(err)
	}
	healed := poll("w2 training again", 2*time.Minute, func(r *pb.GetJobResponse) bool {
		return members(r) == "w1,w2,w3" && r.Job.CommittedStep > r.Generation.GetResumeStep()
	})
	t.Logf("reconnected: generation %d with all three at committed step %d", healed.Job.Generation, healed.Job.CommittedStep)
	for _, p := range append(append([]*Proc{}, c.Coordinators...), c.Workers...) {
		if !p.Running() {
			t.Errorf("%s exited", p.Name)
		}
	}
}
