package coord

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

func specJSON(t testing.TB, tp int) []byte {
	t.Helper()
	s := jobspec.Default()
	s.Parallel.TP = tp
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s.Marshal()
}

func submitCmd(t testing.TB, id string, tp int) *pb.Command {
	return &pb.Command{Cmd: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{JobId: id, SpecJson: specJSON(t, tp)}}}
}

func registerCmd(id, addr string) *pb.Command {
	return &pb.Command{Cmd: &pb.Command_RegisterWorker{RegisterWorker: &pb.RegisterWorkerCmd{Worker: &pb.Worker{
		Id: id, Address: addr, Cores: 2, ProtocolVersion: ProtocolVersion}}}}
}

func workerStateCmd(id string, s pb.WorkerState) *pb.Command {
	return &pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{WorkerId: id, State: s}}}
}

func genCmdFor(jobID string, workers ...string) *pb.Command {
	spec := jobspec.Default().WithDefaults()
	g := Layout(spec, workers, func(id string) string { return id + ":1" })
	g.JobId = jobID
	return &pb.Command{Cmd: &pb.Command_CommitGeneration{CommitGeneration: &pb.CommitGenerationCmd{Generation: g}}}
}

func ckptCmd(jobID string, step int64, final bool, holders ...string) *pb.Command {
	return &pb.Command{Cmd: &pb.Command_CommitCheckpoint{CommitCheckpoint: &pb.CommitCheckpointCmd{Checkpoint: &pb.Checkpoint{
		JobId: jobID, Step: step, Final: final, Shards: []*pb.ShardHolders{{Tp: 0, WorkerIds: holders}}}}}}
}

// TestStoreCommands runs every command, good and bad, in sequence: a bad
// one must fail with its sentinel and leave the state byte-for-byte unchanged.
func TestStoreCommands(t *testing.T) {
	s := NewStore()
	steps := []struct {
		name    string
		cmd     *pb.Command
		wantErr error
		check   func(t *testing.T, st *pb.ClusterState)
	}{
		{"submit", submitCmd(t, "", 1), nil, func(t *testing.T, st *pb.ClusterState) {
			if j := st.Jobs["job-1"]; j == nil || j.State != pb.JobState_JOB_STATE_QUEUED || j.Seq != 1 {
				t.Fatalf("job-1 = %v", j)
			}
		}},
		{"submit named", submitCmd(t, "named", 1), nil, nil},
		{"submit duplicate id", submitCmd(t, "named", 1), ErrJobExists, nil},
		{"submit empty spec", &pb.Command{Cmd: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{}}}, ErrInvalidCommand, nil},
		{"register w1", registerCmd("w1", "a:1"), nil, nil},
		{"register w2", registerCmd("w2", "a:2"), nil, nil},
		{"register w1 again same address", registerCmd("w1", "a:1"), nil, nil},
		{"register w1 at another address", registerCmd("w1", "b:1"), ErrDuplicateWorker, nil},
		{"register without address", registerCmd("w3", ""), ErrInvalidCommand, nil},
		{"generation for unknown job", genCmdFor("nope", "w1"), ErrJobNotFound, nil},
		{"generation with unknown worker", genCmdFor("job-1", "w9"), ErrBadGeneration, nil},
		{"generation with a worker twice", genCmdFor("job-1", "w1", "w1"), ErrBadGeneration, nil},
		{"generation", genCmdFor("job-1", "w1", "w2"), nil, func(t *testing.T, st *pb.ClusterState) {
			j, g := st.Jobs["job-1"], st.Generations["job-1"]
			if j.State != pb.JobState_JOB_STATE_RUNNING || g.Number != 1 || j.Generation != 1 || st.Workers["w1"].JobId != "job-1" {
				t.Fatalf("job %v gen %v", j, g)
			}
		}},
		{"generation stealing a worker", genCmdFor("named", "w2"), ErrBadGeneration, nil},
		{"lost w2", workerStateCmd("w2", pb.WorkerState_WORKER_STATE_LOST), nil, nil},
		{"generation with a lost worker", genCmdFor("job-1", "w1", "w2"), ErrBadGeneration, nil},
		{"unknown worker state", workerStateCmd("w9", pb.WorkerState_WORKER_STATE_LOST), ErrWorkerNotFound, nil},
		{"bad worker state", workerStateCmd("w1", pb.WorkerState_WORKER_STATE_UNSPECIFIED), ErrInvalidCommand, nil},
		{"w2 re-registers elsewhere after loss", registerCmd("w2", "b:2"), nil, func(t *testing.T, st *pb.ClusterState) {
			if w := st.Workers["w2"]; w.State != pb.WorkerState_WORKER_STATE_ALIVE || w.Address != "b:2" {
				t.Fatalf("w2 = %v", w)
			}
		}},
		{"checkpoint 100", ckptCmd("job-1", 100, false, "w1"), nil, func(t *testing.T, st *pb.ClusterState) {
			if st.Jobs["job-1"].CommittedStep != 100 || LatestCheckpoint(st, "job-1").Step != 100 {
				t.Fatal("checkpoint not recorded")
			}
		}},
		{"stale checkpoint", ckptCmd("job-1", 100, false, "w1"), ErrStaleCheckpoint, nil},
		{"checkpoints 200..500 keep 3", ckptCmd("job-1", 200, false, "w1"), nil, nil},
		{"300", ckptCmd("job-1", 300, false, "w1"), nil, nil},
		{"400", ckptCmd("job-1", 400, false, "w1"), nil, func(t *testing.T, st *pb.ClusterState) {
			if l := st.Checkpoints["job-1"].Items; len(l) != 3 || l[0].Step != 200 {
				t.Fatalf("retained %v", l)
			}
		}},
		{"set waiting", &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
			JobId: "job-1", State: pb.JobState_JOB_STATE_WAITING, Reason: "r"}}}, nil, func(t *testing.T, st *pb.ClusterState) {
			if st.Generations["job-1"] != nil || st.Workers["w1"].JobId != "" {
				t.Fatal("waiting job kept its workers")
			}
		}},
		{"set running directly", &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
			JobId: "job-1", State: pb.JobState_JOB_STATE_RUNNING}}}, ErrInvalidCommand, nil},
		{"generation again", genCmdFor("job-1", "w1"), nil, nil},
		{"final checkpoint completes", ckptCmd("job-1", 600, true, "w1"), nil, func(t *testing.T, st *pb.ClusterState) {
			if st.Jobs["job-1"].State != pb.JobState_JOB_STATE_COMPLETED || st.Workers["w1"].JobId != "" {
				t.Fatal("not completed")
			}
		}},
		{"cancel completed", &pb.Command{Cmd: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{JobId: "job-1"}}}, ErrJobFinished, nil},
		{"cancel unknown", &pb.Command{Cmd: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{JobId: "x"}}}, ErrJobNotFound, nil},
		{"cancel", &pb.Command{Cmd: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{JobId: "named"}}}, nil, func(t *testing.T, st *pb.ClusterState) {
			if j := st.Jobs["named"]; j.State != pb.JobState_JOB_STATE_CANCELLED || j.Reason == "" {
				t.Fatalf("named = %v", j)
			}
		}},
		{"fail a finished job", &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
			JobId: "named", State: pb.JobState_JOB_STATE_FAILED}}}, ErrJobFinished, nil},
		{"set coordinator", &pb.Command{Cmd: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{
			Coordinator: &pb.CoordinatorInfo{Id: "c1", RaftAddress: "r", GrpcAddress: "g"}}}}, nil, nil},
		{"set coordinator without id", &pb.Command{Cmd: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{
			Coordinator: &pb.CoordinatorInfo{}}}}, ErrInvalidCommand, nil},
		{"remove coordinator", &pb.Command{Cmd: &pb.Command_RemoveCoordinator{RemoveCoordinator: &pb.RemoveCoordinatorCmd{Id: "c1"}}}, nil, nil},
		{"remove absent coordinator", &pb.Command{Cmd: &pb.Command_RemoveCoordinator{RemoveCoordinator: &pb.RemoveCoordinatorCmd{Id: "c1"}}}, ErrCoordinatorAbsent, nil},
		{"empty command", &pb.Command{}, ErrInvalidCommand, nil},
	}
	for i, st := range steps {
		before, _ := s.Marshal()
		st.cmd.UnixMs = int64(i + 1)
		_, err := s.Apply(st.cmd)
		if !errors.Is(err, st.wantErr) || (st.wantErr == nil) != (err == nil) {
			t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
		}
		if err != nil {
			if after, _ := s.Marshal(); !bytes.Equal(before, after) {
				t.Fatalf("%s: failed command changed the state", st.name)
			}
		}
		if st.check != nil {
			st.check(t, s.State())
		}
	}
}

// TestFSMReplayAndSnapshot replays a log into a fresh FSM, snapshots it,
// restores into a third FSM that had other state, and compares all three.
func TestFSMReplayAndSnapshot(t *testing.T) {
	cmds := []*pb.Command{
		submitCmd(t, "", 1), submitCmd(t, "", 1), registerCmd("w1", "a:1"), registerCmd("w2", "a:2"),
		genCmdFor("job-1", "w1", "w2"), ckptCmd("job-1", 100, false, "w1", "w2"),
		workerStateCmd("w2", pb.WorkerState_WORKER_STATE_LOST), genCmdFor("job-1", "w1"),
		&pb.Command{Cmd: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{JobId: "job-2"}}},
		&pb.Command{Cmd: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{
			Coordinator: &pb.CoordinatorInfo{Id: "c1", RaftAddress: "r", GrpcAddress: "g"}}}},
		submitCmd(t, "", 1), // a failing command in the log is deterministic too
		submitCmd(t, "job-3", 1),
	}
	var log []*raft.Log
	for i, c := range cmds {
		c.UnixMs = int64(1000 + i)
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		log = append(log, &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: b})
	}
	replay := func() *FSM {
		f := NewFSM()
		for _, l := range log {
			f.Apply(l)
		}
		return f
	}
	a, b := replay(), replay()
	sa, _ := a.View()
	sb, _ := b.View()
	if !proto.Equal(sa, sb) {
		t.Fatal("two replays of one log differ")
	}
	if got := sa.Jobs["job-3"]; got == nil || got.Seq != 3 {
		t.Fatalf("job-3 = %v", got)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	c := NewFSM()
	c.Apply(&raft.Log{Type: raft.LogCommand, Data: mustMarshal(t, submitCmd(t, "stale", 1))})
	c.Apply(&raft.Log{Type: raft.LogCommand, Data: mustMarshal(t, registerCmd("stale-worker", "x:1"))})
	changed := func() <-chan struct{} { _, ch := c.View(); return ch }()
	if err := c.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("restore did not signal a change")
	}
	sc, _ := c.View()
	if !proto.Equal(sa, sc) {
		t.Fatalf("restored state differs:\n%v\nvs\n%v", sa, sc)
	}
	if sc.Jobs["stale"] != nil || sc.Workers["stale-worker"] != nil {
		t.Fatal("restore kept previous state")
	}
	// A restored FSM keeps applying the log the same way.
	next := &raft.Log{Type: raft.LogCommand, Data: mustMarshal(t, submitCmd(t, "", 1))}
	ra, rc := a.Apply(next).(ApplyResult), c.Apply(next).(ApplyResult)
	if ra.Err != nil || rc.Err != nil || !proto.Equal(ra.Msg, rc.Msg) {
		t.Fatalf("post-restore apply differs: %v / %v", ra, rc)
	}
	if err := c.Restore(io.NopCloser(bytes.NewReader([]byte{0xff, 0xff}))); err == nil {
		t.Fatal("garbage snapshot restored")
	}
	if res := c.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{0xff}}).(ApplyResult); !errors.Is(res.Err, ErrInvalidCommand) {
		t.Fatalf("garbage command: %v", res.Err)
	}
}

func mustMarshal(t testing.TB, c *pb.Command) []byte {
	t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestCheckpointTrackerNeedsEveryShard(t *testing.T) {
	s := NewStore()
	for _, c := range []*pb.Command{submitCmd(t, "j", 2), registerCmd("a", "a:1"), registerCmd("b", "b:1"),
		registerCmd("c", "c:1"), registerCmd("d", "d:1")} {
		if _, err := s.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	spec := jobspec.Default()
	spec.Parallel.TP = 2
	g := Layout(spec.WithDefaults(), []string{"a", "b", "c", "d"}, func(id string) string { return id })
	g.JobId = "j"
	if _, err := s.Apply(&pb.Command{Cmd: &pb.Command_CommitGeneration{CommitGeneration: &pb.CommitGenerationCmd{Generation: g}}}); err != nil {
		t.Fatal(err)
	}
	tr := NewCheckpointTracker()
	ready := func() []*pb.Checkpoint {
		r, d := tr.Ready(s.State())
		if len(d) != 0 {
			t.Fatalf("diverged: %v", d)
		}
		return r
	}
	tr.Report(&pb.ReportCheckpointRequest{WorkerId: "a", JobId: "j", Step: 10, Tp: 0})
	tr.Report(&pb.ReportCheckpointRequest{WorkerId: "c", JobId: "j", Step: 10, Tp: 0})
	if r := ready(); len(r) != 0 {
		t.Fatalf("ready without tp1: %v", r)
	}
	tr.Report(&pb.ReportCheckpointRequest{WorkerId: "d", JobId: "j", Step: 10, Tp: 1})
	if _, err := s.Apply(workerStateCmd("d", pb.WorkerState_WORKER_STATE_LOST)); err != nil {
		t.Fatal(err)
	}
	if r := ready(); len(r) != 0 {
		t.Fatalf("ready with tp1 only on a lost worker: %v", r)
	}
	tr.Report(&pb.ReportCheckpointRequest{WorkerId: "b", JobId: "j", Step: 10, Tp: 1})
	r := ready()
	if len(r) != 1 || r[0].Step != 10 || len(r[0].Shards) != 2 || len(r[0].Shards[0].WorkerIds) != 2 {
		t.Fatalf("ready = %v", r)
	}
	if r := ready(); len(r) != 0 {
		t.Fatal("reported twice")
	}

	// The final checkpoint completes the job: it waits for every rank, not
	// one holder per shard, because rank (dp 0) reports only once it has
	// saved the final model.
	g = s.State().Generations["j"]
	for i, r := range g.Ranks {
		tr.Report(&pb.ReportCheckpointRequest{WorkerId: r.WorkerId, JobId: "j", Step: 20, Tp: r.Tp, Final: true})
		r := ready()
		if last := i == len(g.Ranks)-1; len(r) != map[bool]int{false: 0, true: 1}[last] {
			t.Fatalf("final checkpoint after %d of %d ranks reported: ready = %v", i+1, len(g.Ranks), r)
		}
	}
}

func TestParsePeers(t *testing.T) {
	ps, err := ParsePeers("a=127.0.0.1:1=127.0.0.1:2, b=h:3=h:4")
	if err != nil || len(ps) != 2 || ps[1] != (Peer{"b", "h:3", "h:4"}) {
		t.Fatalf("%v %v", ps, err)
	}
	for _, bad := range []string{"a=b", "a==c", "=b=c"} {
		if _, err := ParsePeers(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// trackerState is a store with workers a..f alive and a DP×TP generation
// of job j over the first dp·tp of them, with checkpoint.replicas r.
func trackerState(t *testing.T, dp, tp, r int) *Store {
	t.Helper()
	s := NewStore()
	ids := []string{"a", "b", "c", "d", "e", "f"}
	for _, c := range []*pb.Command{submitCmd(t, "j", tp), registerCmd("a", "a:1"), registerCmd("b", "b:1"), registerCmd("c", "c:1"), registerCmd("d", "d:1")} {
		if _, err := s.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	spec := jobspec.Default()
	spec.Parallel.TP = tp
	spec = spec.WithDefaults()
	g := Layout(spec, ids[:dp*tp], func(id string) string { return id + ":1" })
	g.JobId = "j"
	g.CheckpointReplicas, g.ReplicaCopies = ReplicaCopies(g, r, nil)
	if _, err := s.Apply(&pb.Command{Cmd: &pb.Command_CommitGeneration{CommitGeneration: &pb.CommitGenerationCmd{Generation: g}}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// With checkpoint.replicas 2 and DP 1, a step commits only once each TP
// shard is on two workers: its owner and the peer it was copied to.
func TestCheckpointTrackerWaitsForReplicas(t *testing.T) {
	s := trackerState(t, 1, 2, 2)
	g := s.State().Generations["j"]
	if g.CheckpointReplicas != 2 || len(g.ReplicaCopies) != 2 {
		t.Fatalf("generation wants %d copies via %v", g.CheckpointReplicas, g.ReplicaCopies)
	}
	tr := NewCheckpointTracker()
	sum0, sum1 := []byte{1, 2}, []byte{3, 4}
	report := func(id string, tp int32, sum []byte) {
		tr.Report(&pb.ReportCheckpointRequest{WorkerId: id, JobId: "j", Generation: g.Number, Step: 10, Tp: tp, Checksum: sum})
	}
	report("a", 0, sum0)
	report("b", 1, sum1)
	if r, d := tr.Ready(s.State()); len(r) != 0 || len(d) != 0 {
		t.Fatalf("committed with one copy of each shard: %v %v", r, d)
	}
	report("b", 0, sum0) // a's shard, copied to b
	if r, _ := tr.Ready(s.State()); len(r) != 0 {
		t.Fatalf("committed with one copy of tp 1: %v", r)
	}
	report("a", 1, sum1)
	r, d := tr.Ready(s.State())
	if len(r) != 1 || len(d) != 0 {
		t.Fatalf("ready %v diverged %v", r, d)
	}
	for _, sh := range r[0].Shards {
		if len(sh.WorkerIds) != 2 || !bytes.Equal(sh.Checksum, [][]byte{sum0, sum1}[sh.Tp]) {
			t.Fatalf("commit record shard %v", sh)
		}
	}
}

// DP replicas that report different checksums have diverged: the step is
// refused with a reason naming both ranks, and never commits.
func TestCheckpointTrackerRefusesDivergedReplicas(t *testing.T) {
	s := trackerState(t, 2, 1, 2)
	g := s.State().Generations["j"]
	if len(g.ReplicaCopies) != 0 {
		t.Fatalf("DP 2 needs no copies for 2 replicas, got %v", g.ReplicaCopies)
	}
	tr := NewCheckpointTracker()
	tr.Report(&pb.ReportCheckpointRequest{WorkerId: "a", JobId: "j", Generation: g.Number, Step: 10, Checksum: []byte{1}})
	tr.Report(&pb.ReportCheckpointRequest{WorkerId: "b", JobId: "j", Generation: g.Number, Step: 10, Checksum: []byte{2}})
	r, d := tr.Ready(s.State())
	if len(r) != 0 || len(d) != 1 {
		t.Fatalf("ready %v diverged %v", r, d)
	}
	for _, want := range []string{"step 10", "tp shard 0", "a (rank 0: dp 0, tp 0)", "b (rank 1: dp 1, tp 0)", "diverged"} {
		if !strings.Contains(d[0].Reason, want) {
			t.Errorf("reason %q lacks %q", d[0].Reason, want)
		}
	}
	if r, d := tr.Ready(s.State()); len(r)+len(d) != 0 {
		t.Fatalf("diverged step still pending: %v %v", r, d)
	}
}

// ReplicaCopies: every shard ends on the number of distinct workers asked
// for (capped by the generation), sources hold the shard, and no worker
// receives a shard twice.
func TestReplicaCopies(t *testing.T) {
	for _, c := range []struct{ dp, tp, r int }{{1, 1, 2}, {1, 2, 2}, {1, 4, 3}, {2, 2, 2}, {2, 2, 3}, {2, 3, 4}, {3, 2, 2}, {1, 2, 9}} {
		spec := jobspec.Default()
		spec.Parallel.TP = c.tp
		ids := []string{"a", "b", "c", "d", "e", "f"}[:c.dp*c.tp]
		g := Layout(spec.WithDefaults(), ids, func(id string) string { return id })
		need, copies := ReplicaCopies(g, c.r, nil)
		if want := min(c.r, c.dp*c.tp); int(need) != want {
			t.Errorf("%+v: need %d, want %d", c, need, want)
		}
		holders := map[int32]map[int32]bool{} // tp → ranks holding it
		for _, r := range g.Ranks {
			if holders[r.Tp] == nil {
				holders[r.Tp] = map[int32]bool{}
			}
			holders[r.Tp][r.Rank] = true
		}
		for _, cp := range copies {
			tp := g.Ranks[cp.From].Tp
			if g.Ranks[cp.From].Tp != tp || holders[tp][cp.To] {
				t.Fatalf("%+v: copy %v of tp %d goes to a rank that holds it already", c, cp, tp)
			}
			holders[tp][cp.To] = true
		}
		for tp, hs := range holders {
			if len(hs) != max(int(need), c.dp) {
				t.Errorf("%+v: tp %d on %d workers, want %d", c, tp, len(hs), need)
			}
		}
	}
}

// With workers on two machines, the extra copy of a shard goes to the
// other machine even where the formula's first choice is on the same one.
func TestReplicaCopiesSpreadOverMachines(t *testing.T) {
	spec := jobspec.Default()
	spec.Parallel.TP = 4
	g := Layout(spec.WithDefaults(), []string{"a", "b", "c", "d"}, func(id string) string { return id })
	machine := map[string]string{"a": "m1", "b": "m1", "c": "m2", "d": "m2"}
	_, copies := ReplicaCopies(g, 2, func(id string) string { return machine[id] })
	if len(copies) != 4 {
		t.Fatalf("copies %v", copies)
	}
	for _, c := range copies {
		from, to := g.Ranks[c.From].WorkerId, g.Ranks[c.To].WorkerId
		if machine[from] == machine[to] {
			t.Errorf("shard of %s copied to %s on the same machine %s", from, to, machine[from])
		}
	}
	// On one machine it falls back to the formula: rank t → rank t+1.
	_, copies = ReplicaCopies(g, 2, nil)
	for _, c := range copies {
		if c.To != (c.From+1)%4 {
			t.Errorf("copy %v, want rank %d → %d", c, c.From, (c.From+1)%4)
		}
	}
}

// InitCheckpoint (submit --from) names what is missing.
func TestInitCheckpointErrors(t *testing.T) {
	s := trackerState(t, 1, 2, 2)
	spec := jobspec.Default()
	spec.Parallel.TP = 2
	spec = spec.WithDefaults()
	for from, want := range map[string]string{"nope": "no such job", "j": "has no committed checkpoint"} {
		if _, err := InitCheckpoint(s.State(), spec, from, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--from %s: %v, want %q", from, err, want)
		}
	}
}
