package localcluster

import (
	"fmt"
	"slices"
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
