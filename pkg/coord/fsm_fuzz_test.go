package coord

import (
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// FuzzFSMApply: whatever bytes a log entry holds, applying it never
// panics the state machine (it is applied on every node, so a panic would
// take down the whole group) and a refused command leaves the state as it
// was.
func FuzzFSMApply(f *testing.F) {
	seed := []*pb.Command{
		{Cmd: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{SpecJson: jobspec.Default().Marshal()}}},
		{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{WorkerId: "w1", State: pb.WorkerState_WORKER_STATE_LOST}}},
		{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{JobId: "job-1", State: pb.JobState_JOB_STATE_FAILED}}},
	}
	for _, c := range seed {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := NewFSM()
		for _, c := range seed[:1] { // a cluster with one job
			b, _ := proto.Marshal(c)
			fsm.Apply(&raft.Log{Type: raft.LogCommand, Data: b})
		}
		var before []byte
		fsm.Read(func(st *pb.ClusterState) { before, _ = proto.MarshalOptions{Deterministic: true}.Marshal(st) })
		res, _ := fsm.Apply(&raft.Log{Type: raft.LogCommand, Data: data}).(ApplyResult)
		if res.Err != nil {
			var after []byte
			fsm.Read(func(st *pb.ClusterState) { after, _ = proto.MarshalOptions{Deterministic: true}.Marshal(st) })
			if string(after) != string(before) {
				t.Fatalf("a refused command (%v) changed the state", res.Err)
			}
		}
	})
}
