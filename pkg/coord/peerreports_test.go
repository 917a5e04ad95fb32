package coord

import (
	"fmt"
	"slices"
	"testing"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// TestPeerReportsExclude: reports of unreachable peers are evidence about
// links. A crashed worker (reported by its neighbours only) goes; a worker
// cut off from all its peers goes alone although every one of them is
// reported back; stale-generation reports and reports from workers that are
// gone count for nothing.
func TestPeerReportsExclude(t *testing.T) {
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
	}
	for _, tc := range []struct {
		name    string
		st      *pb.ClusterState
		reports []report
		want    []string
	}{
		{"crashed peer", state(5, "w1", "w2", "w3"),
			[]report{{"w1", "w3", 5}, {"w2", "w3", 5}}, []string{"w3: reported unreachable by w1, w2"}},
		{"two workers cut from each other: one goes", state(5, "w1", "w2"),
			[]report{{"w1", "w2", 5}, {"w2", "w1", 5}}, []string{"w1: reported unreachable by w2"}},
		{"one of three cut from both others", state(5, "w1", "w2", "w3"),
			[]report{{"w1", "w2", 5}, {"w1", "w3", 5}, {"w2", "w1", 5}, {"w3", "w1", 5}},
			[]string{"w1: reported unreachable by w2, w3"}},
		{"report from an earlier generation", state(6, "w1", "w2"),
			[]report{{"w1", "w2", 5}}, nil},
		{"report from a worker that is gone", func() *pb.ClusterState {
			st := state(5, "w1", "w2")
			st.Workers["w1"].State = pb.WorkerState_WORKER_STATE_LOST
			return st
		}(), []report{{"w1", "w2", 5}}, nil},
		{"report about a worker already lost", func() *pb.ClusterState {
			st := state(5, "w1", "w2")
			st.Workers["w2"].State = pb.WorkerState_WORKER_STATE_LOST
			return st
		}(), []report{{"w1", "w2", 5}}, nil},
		{"report from a free worker", func() *pb.ClusterState {
			st := state(5, "w1", "w2")
			st.Workers["w1"].JobId = ""
			return st
		}(), []report{{"w1", "w2", 5}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := peerReports{}
			for _, x := range tc.reports {
				r.add(x.by, x.target, x.gen)
			}
			var got []string
			for _, x := range r.exclude(tc.st) {
				got = append(got, fmt.Sprintf("%s: %s", x.id, x.reason))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("exclude = %q, want %q", got, tc.want)
			}
		})
	}
}
