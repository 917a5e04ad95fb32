package coord

import (
	"fmt"
	"slices"
	"testing"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// TestPeerReportsExclude: reports of unreachable peers are evidence about
// links. Only a link reported from both ends counts; a worker cut off from
// all its peers goes alone although each of them is reported back; stale
// generations, workers that are gone and old reports count for nothing.
func TestPeerReportsExclude(t *testing.T) {
	now := time.Unix(1000, 0)
	state := func(gen uint64, alive ...string) *pb.ClusterState {
		st := &pb.ClusterState{Workers: map[string]*pb.Worker{}, Jobs: map[string]*pb.Job{"job-1": {Id: "job-1", Generation: gen}}}
		for _, id := range alive {
			st.Workers[id] = &pb.Worker{Id: id, State: pb.WorkerState_WORKER_STATE_ALIVE, JobId: "job-1"}
		}
		return st
	}
	type report struct {
		by, target string
		gen        uint64
		age        time.Duration
	}
	const cut = " (each end reported the other unreachable)"
	for _, tc := range []struct {
		name    string
		st      *pb.ClusterState
		reports []report
		want    []string
	}{
		{"one-sided reports (a crashed peer)", state(5, "w1", "w2", "w3"),
			[]report{{"w1", "w3", 5, 0}, {"w2", "w3", 5, 0}}, nil},
		{"a ring cascade is not a cut", state(5, "w1", "w2", "w3"),
			[]report{{"w2", "w1", 5, 0}, {"w3", "w2", 5, 0}, {"w1", "w3", 5, 0}}, nil},
		{"two workers cut from each other: one goes", state(5, "w1", "w2"),
			[]report{{"w1", "w2", 5, 0}, {"w2", "w1", 5, 0}}, []string{"w1: cut off from peers w2" + cut}},
		{"one of three cut from both others", state(5, "w1", "w2", "w3"),
			[]report{{"w3", "w1", 5, 0}, {"w3", "w2", 5, 0}, {"w1", "w3", 5, 0}, {"w2", "w3", 5, 0}},
			[]string{"w3: cut off from peers w1, w2" + cut}},
		{"the other end reported a moment later", state(5, "w1", "w2"),
			[]report{{"w1", "w2", 5, 20 * time.Second}, {"w2", "w1", 5, 0}}, []string{"w1: cut off from peers w2" + cut}},
		{"the other end's report is too old", state(5, "w1", "w2"),
			[]report{{"w1", "w2", 5, 2 * peerReportTTL}, {"w2", "w1", 5, 0}}, nil},
		{"one end reports an earlier generation", state(6, "w1", "w2"),
			[]report{{"w1", "w2", 5, 0}, {"w2", "w1", 6, 0}}, nil},
		{"one end is gone", func() *pb.ClusterState {
			st := state(5, "w1", "w2")
			st.Workers["w1"].State = pb.WorkerState_WORKER_STATE_LOST
			return st
		}(), []report{{"w1", "w2", 5, 0}, {"w2", "w1", 5, 0}}, nil},
		{"one end is free", func() *pb.ClusterState {
			st := state(5, "w1", "w2")
			st.Workers["w1"].JobId = ""
			return st
		}(), []report{{"w1", "w2", 5, 0}, {"w2", "w1", 5, 0}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := peerReports{}
			for _, x := range tc.reports {
				r.add(x.by, x.target, x.gen, now.Add(-x.age))
			}
			r.prune(tc.st, now)
			var got []string
			for _, x := range r.exclude() {
				got = append(got, fmt.Sprintf("%s: %s", x.id, x.reason))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exclude = %q, want %q", got, tc.want)
			}
		})
	}
}
