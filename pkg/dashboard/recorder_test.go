package dashboard

import (
	"reflect"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// TestObserveDerivesTheTimeline feeds hand-built cluster states (as the FSM
// would hold them) and checks the timeline against the list written out.
func TestObserveDerivesTheTimeline(t *testing.T) {
	now := time.UnixMilli(5000)
	r := NewRecorder(Config{Now: func() time.Time { return now }, MaxEvents: 16})
	job := func(s pb.JobState, reason string) *pb.Job {
		return &pb.Job{Id: "j", State: s, Reason: reason, SubmittedUnixMs: 1000, UpdatedUnixMs: 2000}
	}
	alive := &pb.Worker{Id: "w2", State: pb.WorkerState_WORKER_STATE_ALIVE, JobId: "j"}
	gen1 := &pb.Generation{JobId: "j", Number: 1, DpSize: 2, TpSize: 1, Ranks: []*pb.Rank{{WorkerId: "w1"}, {WorkerId: "w2"}}, Reason: "start"}
	ck := func(steps ...int64) *pb.CheckpointList {
		l := &pb.CheckpointList{}
		for _, s := range steps {
			l.Items = append(l.Items, &pb.Checkpoint{Step: s, Generation: 1, Shards: []*pb.ShardHolders{{Tp: 0, WorkerIds: []string{"w1"}}}})
		}
		return l
	}
	states := []*pb.ClusterState{
		{Jobs: map[string]*pb.Job{"j": job(pb.JobState_JOB_STATE_QUEUED, "")}},
		{Jobs: map[string]*pb.Job{"j": job(pb.JobState_JOB_STATE_RUNNING, "start")}, Generations: map[string]*pb.Generation{"j": gen1},
			Workers: map[string]*pb.Worker{"w2": alive}},
		{Jobs: map[string]*pb.Job{"j": job(pb.JobState_JOB_STATE_RUNNING, "start")}, Generations: map[string]*pb.Generation{"j": gen1},
			Workers: map[string]*pb.Worker{"w2": alive}, Checkpoints: map[string]*pb.CheckpointList{"j": ck(10)}},
		{Jobs: map[string]*pb.Job{"j": job(pb.JobState_JOB_STATE_RUNNING, "start")}, Generations: map[string]*pb.Generation{"j": gen1},
			Workers: map[string]*pb.Worker{"w2": alive}, Checkpoints: map[string]*pb.CheckpointList{"j": ck(10, 20, 30)}},
		{Jobs: map[string]*pb.Job{"j": job(pb.JobState_JOB_STATE_RUNNING, "lost or restarted 1 worker(s)")},
			Generations: map[string]*pb.Generation{"j": {JobId: "j", Number: 2, DpSize: 1, TpSize: 1, ResumeStep: 30,
				Ranks: []*pb.Rank{{WorkerId: "w1"}}, Reason: "lost or restarted 1 worker(s)"}},
			Workers:     map[string]*pb.Worker{"w2": {Id: "w2", State: pb.WorkerState_WORKER_STATE_LOST, Reason: "session broke"}},
			Checkpoints: map[string]*pb.CheckpointList{"j": ck(10, 20, 30)}},
	}
	for _, st := range states {
		r.Observe(st)
	}
	var got []string
	for _, e := range r.snapshot("j").events {
		got = append(got, e.Kind+": "+e.Text)
	}
	want := []string{
		"submitted: submitted",
		"state: queued",
		"generation: generation 1: 2 ranks (dp 2 × tp 1): start",
		"state: running: start",
		"checkpoint: 3 checkpoints committed, steps 10…30; latest checkpoint step 30 committed (tp0: w1)",
		"generation: generation 2: 1 ranks (dp 1 × tp 1), resume from step 30: lost or restarted 1 worker(s)",
		"worker: worker w2 lost: session broke",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("timeline:\n got %q\nwant %q", got, want)
	}

	// A job gone from the state takes its history with it.
	r.Observe(&pb.ClusterState{})
	if n := len(r.snapshot("j").events); n != 0 {
		t.Errorf("%d events kept for a job no longer in the state", n)
	}
}

func TestEventsStayBounded(t *testing.T) {
	r := NewRecorder(Config{MaxEvents: 4})
	h := r.hist("j")
	for i := range 10 {
		kind := "generation"
		if i%2 == 1 {
			kind = "worker"
		}
		r.event(h, Event{Kind: kind, Step: int64(i)})
	}
	if len(h.events) != 4 || h.events[0].Step != 6 || h.events[3].Step != 9 {
		t.Errorf("kept %+v; want the last 4 (steps 6…9)", h.events)
	}
}
