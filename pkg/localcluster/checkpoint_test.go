package localcluster

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Real processes: a DP 2 × TP 2 job on four workers and no spare; SIGKILL
// each of the four workers in turn (a fresh cluster each). The survivors
// form a DP 1 × TP 2 generation that keeps a holder of each TP shard of the
// last committed checkpoint on that shard's index, so the job goes on
// every time and ends where a single process ends (the layout changed, so
// within compareModel's tolerance, not bit for bit).
func TestClusterTPShardSurvivesAnyWorkerKill(t *testing.T) {
	spec := smallSpec(t, "train.max_iters=400", "train.learning_rate=3e-4", "train.min_lr=3e-5",
		"parallel.tp=2", "parallel.min_workers=2", "parallel.max_workers=4")
	want := reference(t, spec)
	for victim := range 4 {
		dp, tp := victim/2, victim%2
		t.Run(fmt.Sprintf("kill_dp%d_tp%d", dp, tp), func(t *testing.T) {
			c := startCluster(t, 4)
			_, job := submit(t, c, spec)
			var killed string
			var last *pb.Generation
			end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
				g := r.Generation
				if g == nil {
					return
				}
				last = g
				if killed == "" && g.DpSize == 2 && r.Job.CommittedStep >= 100 {
					killed = g.Ranks[victim].WorkerId
					c.proc(t, killed).Signal(syscall.SIGKILL)
				}
			})
			if killed == "" {
				t.Fatal("the job finished before a worker could be killed; make it longer")
			}
			if end.State != pb.JobState_JOB_STATE_COMPLETED {
				t.Fatalf("job ended %v after killing %s (dp %d, tp %d): %s", end.State, killed, dp, tp, end.Reason)
			}
			if last.DpSize != 1 || last.TpSize != 2 || last.ResumeStep < 100 {
				t.Errorf("last generation dp %d × tp %d resuming from %d; want dp 1 × tp 2 from a checkpoint ≥ 100",
					last.DpSize, last.TpSize, last.ResumeStep)
			}
			if slices.ContainsFunc(last.Ranks, func(r *pb.Rank) bool { return r.WorkerId == killed }) {
				t.Errorf("killed worker %s is still in the last generation", killed)
			}
			compareModel(t, c.ModelDir(job.Id), want)
		})
	}
}

// Real processes: a DP 1 × TP 2 job (each TP shard has no data-parallel
// replica) with checkpoint.replicas 2 and a warm spare. Every committed
// checkpoint names two holders of each shard with one checksum: the
// workers copy their shards to each other. SIGKILL one worker and delete
// its data dir (the machine is lost for good): the spare takes its TP
// index, fetches that shard from the surviving copy, and the job ends
// where one process ends.
func TestClusterShardLostForGoodIsFetchedFromItsReplica(t *testing.T) {
	spec := smallSpec(t, "train.max_iters=400", "train.learning_rate=3e-4", "train.min_lr=3e-5",
		"parallel.tp=2", "parallel.min_workers=2", "parallel.max_workers=2")
	if spec.Checkpoint.Replicas != 2 {
		t.Fatalf("checkpoint.replicas defaults to %d, this test expects 2", spec.Checkpoint.Replicas)
	}
	want := reference(t, spec)
	c := startCluster(t, 3)
	_, job := submit(t, c, spec)
	var (
		killed  *Proc
		first   *pb.Generation
		last    *pb.Generation
		commits []*pb.Checkpoint
	)
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		if r.Generation == nil {
			return
		}
		if first == nil {
			first = r.Generation
		}
		last, commits = r.Generation, r.Checkpoints
		if killed == nil && r.Job.CommittedStep >= 100 {
			killed = c.proc(t, r.Generation.Ranks[1].WorkerId)
			killed.Signal(syscall.SIGKILL)
			killed.Wait()
			if err := os.RemoveAll(c.DataDir(killed)); err != nil {
				t.Error(err)
			}
		}
	})
	if killed == nil {
		t.Fatal("the job finished before a worker could be killed; make it longer")
	}
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v after losing %s for good: %s", end.State, killed.Name, end.Reason)
	}
	if first.CheckpointReplicas != 2 || len(first.ReplicaCopies) != 2 {
		t.Errorf("first generation wants %d copies via %v; want 2 via one copy per shard", first.CheckpointReplicas, first.ReplicaCopies)
	}
	if last.ResumeStep < 100 || slices.ContainsFunc(last.Ranks, func(r *pb.Rank) bool { return r.WorkerId == killed.Name }) {
		t.Errorf("last generation resumes from %d with ranks %v; want the spare in place of %s from a checkpoint ≥ 100", last.ResumeStep, last.Ranks, killed.Name)
	}
	for _, ck := range commits {
		if ck.Generation != first.Number {
			continue
		}
		for _, sh := range ck.Shards {
			if len(sh.WorkerIds) < 2 || len(sh.Checksum) != 32 {
				t.Errorf("checkpoint %d tp %d committed with holders %v, checksum %x; want 2 holders and a SHA-256", ck.Step, sh.Tp, sh.WorkerIds, sh.Checksum)
			}
		}
	}
	// The spare says where its state came from.
	var spare *Proc
	for _, r := range last.Ranks {
		if r.Tp == 1 {
			spare = c.proc(t, r.WorkerId)
		}
	}
	b, err := os.ReadFile(spare.Log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "checkpoint shard received from a peer") || !strings.Contains(string(b), "kind=fetch") {
		t.Errorf("%s's log does not say it fetched its shard from a peer", spare.Name)
	}
	compareModel(t, c.ModelDir(job.Id), want)
}
