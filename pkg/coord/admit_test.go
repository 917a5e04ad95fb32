package coord

import (
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

func TestAdmit(t *testing.T) {
	state := func(mem ...int64) *pb.ClusterState {
		st := &pb.ClusterState{Workers: map[string]*pb.Worker{}}
		for i, m := range mem {
			id := string(rune('a' + i))
			st.Workers[id] = &pb.Worker{Id: id, State: pb.WorkerState_WORKER_STATE_ALIVE, MemoryBytes: m}
		}
		return st
	}
	spec := func(set ...string) jobspec.Spec {
		s, err := jobspec.Override(jobspec.Default(), set)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	big := spec("model.n_layer=8", "model.n_embd=2048", "model.n_head=8", "model.vocab_size=1000")
	est, err := jobspec.EstimateMemory(big, jobspec.Layout{DP: 1, TP: 1, Lanes: 1, VocabSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	need := 2 * est.TotalBytes // what Fits asks for
	for _, tc := range []struct {
		name string
		st   *pb.ClusterState
		spec jobspec.Spec
		want string // "" admitted, else a substring of the error
	}{
		{"no worker reports memory", state(0, 0), big, ""},
		{"no workers", state(), big, ""},
		{"small job", state(1 << 30), jobspec.Default(), ""},
		{"fits the largest worker", state(need/4, need+1), big, ""},
		{"fits no worker", state(need/4, need/2), big, "largest of 2 registered worker(s) (b)"},
		{"the hint names the fields", state(need / 2), big, "model.n_layer / model.n_embd"},
		// ZeRO-1 over 4 DP ranks splits AdamW's moments: less per worker.
		{"zero1 over more workers fits", state(need*3/4, need*3/4, need*3/4, need*3/4), spec("model.n_layer=8", "model.n_embd=2048", "model.n_head=8", "model.vocab_size=1000", "parallel.zero1=true"), ""},
	} {
		err := Admit(tc.st, tc.spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	// A lost worker's memory does not count.
	st := state(need + 1)
	st.Workers["a"].State = pb.WorkerState_WORKER_STATE_LOST
	st.Workers["b"] = &pb.Worker{Id: "b", State: pb.WorkerState_WORKER_STATE_ALIVE, MemoryBytes: need / 2}
	if err := Admit(st, big); err == nil {
		t.Error("admitted on the memory of a lost worker")
	}
}
