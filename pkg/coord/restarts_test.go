package coord

import (
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// A job whose generations lose their workers again and again before any
// checkpoint (a spec that crashes every worker it is given) is failed after
// train.max_restarts instead of being handed out forever; losses after
// progress (a checkpoint past the resume step) start the count again.
func TestSchedulerFailsAJobThatKeepsLosingItsWorkers(t *testing.T) {
	s := NewStore()
	apply := func(c *pb.Command) {
		t.Helper()
		if _, err := s.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	plan := func() {
		for range 5 {
			cmds := Plan(s.State())
			if len(cmds) == 0 {
				return
			}
			for _, c := range cmds {
				apply(c)
			}
		}
	}
	spec := jobspec.Default()
	spec.Parallel.MinWorkers, spec.Parallel.MaxWorkers = 2, 2
	spec.Train.MaxRestarts = 2
	apply(&pb.Command{Cmd: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{JobId: "job-1", SpecJson: spec.WithDefaults().Marshal()}}})
	workers := []string{"w1", "w2"}
	setAll := func(state pb.WorkerState) {
		for _, id := range workers {
			if state == pb.WorkerState_WORKER_STATE_ALIVE {
				apply(&pb.Command{Cmd: &pb.Command_RegisterWorker{RegisterWorker: &pb.RegisterWorkerCmd{Worker: &pb.Worker{
					Id: id, Address: id + ":9000", Cores: 1, ProtocolVersion: ProtocolVersion}}}})
				continue
			}
			apply(&pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{WorkerId: id, State: state, Reason: "crashed"}}})
		}
	}
	job := func() *pb.Job { return s.State().Jobs["job-1"] }

	setAll(pb.WorkerState_WORKER_STATE_ALIVE)
	plan()
	// Progress, then a loss: the count starts at 1.
	g := s.State().Generations["job-1"]
	apply(&pb.Command{Cmd: &pb.Command_CommitCheckpoint{CommitCheckpoint: &pb.CommitCheckpointCmd{Checkpoint: &pb.Checkpoint{
		JobId: "job-1", Step: 100, Generation: g.Number,
		Shards: []*pb.ShardHolders{{Tp: 0, WorkerIds: workers}}}}}})
	for round, want := range []uint32{1, 2} {
		setAll(pb.WorkerState_WORKER_STATE_LOST) // every worker crashes at once
		plan()
		if j := job(); j.State != pb.JobState_JOB_STATE_WAITING || j.Restarts != want {
			t.Fatalf("loss %d: job %v restarts %d (%s), want waiting with %d", round+1, j.State, j.Restarts, j.Reason, want)
		}
		setAll(pb.WorkerState_WORKER_STATE_ALIVE) // restarted by their supervisor
		plan()
		if j := job(); j.State != pb.JobState_JOB_STATE_RUNNING || j.Restarts != want {
			t.Fatalf("after loss %d: job %v restarts %d, want running with %d", round+1, j.State, j.Restarts, want)
		}
	}
	setAll(pb.WorkerState_WORKER_STATE_LOST)
	plan()
	j := job()
	if j.State != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.Reason, "3 generations in a row") || !strings.Contains(j.Reason, "train.max_restarts") {
		t.Fatalf("third loss without progress: job %v (%s), want failed naming train.max_restarts", j.State, j.Reason)
	}
}
