package coord

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Store is the replicated cluster state and the deterministic transition of
// each command. It does no I/O and reads no clock: everything it needs is in
// the command (the leader stamps Command.unix_ms). It is not safe for
// concurrent use; FSM serialises access.
type Store struct {
	st *pb.ClusterState
}

// NewStore returns an empty store.
func NewStore() *Store { return &Store{st: emptyState()} }

func emptyState() *pb.ClusterState {
	return &pb.ClusterState{
		Jobs:         map[string]*pb.Job{},
		Workers:      map[string]*pb.Worker{},
		Generations:  map[string]*pb.Generation{},
		Checkpoints:  map[string]*pb.CheckpointList{},
		Coordinators: map[string]*pb.CoordinatorInfo{},
	}
}

// State returns the live state; callers must not modify it.
func (s *Store) State() *pb.ClusterState { return s.st }

// Clone returns a deep copy of the state.
func (s *Store) Clone() *pb.ClusterState { return proto.Clone(s.st).(*pb.ClusterState) }

// Marshal encodes the whole state deterministically (the snapshot format).
func (s *Store) Marshal() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(s.st)
}

// Reset replaces the whole state with the decoded snapshot.
func (s *Store) Reset(snapshot []byte) error {
	st := emptyState()
	if err := proto.Unmarshal(snapshot, st); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	fillMaps(st)
	s.st = st
	return nil
}

func fillMaps(st *pb.ClusterState) {
	if st.Jobs == nil {
		st.Jobs = map[string]*pb.Job{}
	}
	if st.Workers == nil {
		st.Workers = map[string]*pb.Worker{}
	}
	if st.Generations == nil {
		st.Generations = map[string]*pb.Generation{}
	}
	if st.Checkpoints == nil {
		st.Checkpoints = map[string]*pb.CheckpointList{}
	}
	if st.Coordinators == nil {
		st.Coordinators = map[string]*pb.CoordinatorInfo{}
	}
}

// Terminal reports whether a job state is final.
func Terminal(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_COMPLETED || s == pb.JobState_JOB_STATE_FAILED ||
		s == pb.JobState_JOB_STATE_CANCELLED
}

// JobSpec decodes a stored job's canonical spec.
func JobSpec(j *pb.Job) (jobspec.Spec, error) {
	var s jobspec.Spec
	if err := json.Unmarshal(j.GetSpecJson(), &s); err != nil {
		return s, fmt.Errorf("job %s: stored spec: %w", j.GetId(), err)
	}
	return s.WithDefaults(), nil
}

// Apply performs one command and returns the object it created or changed.
// An error means the state is unchanged.
func (s *Store) Apply(c *pb.Command) (proto.Message, error) {
	now := c.GetUnixMs()
	switch x := c.GetCmd().(type) {
	case *pb.Command_SubmitJob:
		return s.submitJob(x.SubmitJob, now)
	case *pb.Command_CancelJob:
		j, err := s.activeJob(x.CancelJob.GetJobId())
		if err != nil {
			return nil, err
		}
		reason := x.CancelJob.GetReason()
		if reason == "" {
			reason = "cancelled by user"
		}
		s.setJobState(j, pb.JobState_JOB_STATE_CANCELLED, reason, now)
		return j, nil
	case *pb.Command_SetJobState:
		return s.setJobStateCmd(x.SetJobState, now)
	case *pb.Command_RegisterWorker:
		return s.registerWorker(x.RegisterWorker.GetWorker(), now)
	case *pb.Command_SetWorkerState:
		w, ok := s.st.Workers[x.SetWorkerState.GetWorkerId()]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrWorkerNotFound, x.SetWorkerState.GetWorkerId())
		}
		switch x.SetWorkerState.GetState() {
		case pb.WorkerState_WORKER_STATE_ALIVE, pb.WorkerState_WORKER_STATE_LOST:
		default:
			return nil, fmt.Errorf("%w: worker state %v", ErrInvalidCommand, x.SetWorkerState.GetState())
		}
		w.State = x.SetWorkerState.GetState()
		w.Reason = x.SetWorkerState.GetReason()
		return w, nil
	case *pb.Command_CommitGeneration:
		return s.commitGeneration(x.CommitGeneration.GetGeneration(), now)
	case *pb.Command_CommitCheckpoint:
		return s.commitCheckpoint(x.CommitCheckpoint.GetCheckpoint(), now)
	case *pb.Command_DropCheckpoint:
		return s.dropCheckpoint(x.DropCheckpoint, now)
	case *pb.Command_SetCoordinator:
		ci := x.SetCoordinator.GetCoordinator()
		if ci.GetId() == "" {
			return nil, fmt.Errorf("%w: coordinator id is empty", ErrInvalidCommand)
		}
		s.st.Coordinators[ci.GetId()] = proto.Clone(ci).(*pb.CoordinatorInfo)
		return ci, nil
	case *pb.Command_RemoveCoordinator:
		if _, ok := s.st.Coordinators[x.RemoveCoordinator.GetId()]; !ok {
			return nil, fmt.Errorf("%w: %q", ErrCoordinatorAbsent, x.RemoveCoordinator.GetId())
		}
		delete(s.st.Coordinators, x.RemoveCoordinator.GetId())
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: unknown command %T", ErrInvalidCommand, c.GetCmd())
	}
}

func (s *Store) submitJob(c *pb.SubmitJobCmd, now int64) (proto.Message, error) {
	if len(c.GetSpecJson()) == 0 {
		return nil, fmt.Errorf("%w: empty spec", ErrInvalidCommand)
	}
	id := c.GetJobId()
	if id == "" {
		id = fmt.Sprintf("job-%d", s.st.NextJobSeq+1)
	}
	if _, ok := s.st.Jobs[id]; ok {
		return nil, fmt.Errorf("%w: %q", ErrJobExists, id)
	}
	s.st.NextJobSeq++
	j := &pb.Job{
		Id: id, SpecJson: c.GetSpecJson(), State: pb.JobState_JOB_STATE_QUEUED, Seq: s.st.NextJobSeq,
		SubmittedUnixMs: now, UpdatedUnixMs: now, ModelConfigHash: c.GetModelConfigHash(),
	}
	if c.GetInitFrom() != nil {
		j.InitFrom = proto.Clone(c.GetInitFrom()).(*pb.Checkpoint)
	}
	s.st.Jobs[id] = j
	return j, nil
}

func (s *Store) activeJob(id string) (*pb.Job, error) {
	j, ok := s.st.Jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrJobNotFound, id)
	}
	if Terminal(j.State) {
		return nil, fmt.Errorf("%w: %s is %s", ErrJobFinished, id, StateName(j.State))
	}
	return j, nil
}

func (s *Store) setJobStateCmd(c *pb.SetJobStateCmd, now int64) (proto.Message, error) {
	j, err := s.activeJob(c.GetJobId())
	if err != nil {
		return nil, err
	}
	switch c.GetState() {
	case pb.JobState_JOB_STATE_WAITING, pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED,
		pb.JobState_JOB_STATE_CANCELLED:
	default:
		return nil, fmt.Errorf("%w: cannot set job state %v directly", ErrInvalidCommand, c.GetState())
	}
	s.setJobState(j, c.GetState(), c.GetReason(), now)
	if c.Restarts != nil {
		j.Restarts = c.GetRestarts()
	}
	return j, nil
}

// setJobState moves j to a state without a generation (waiting or terminal)
// and frees its workers.
func (s *Store) setJobState(j *pb.Job, st pb.JobState, reason string, now int64) {
	if st != pb.JobState_JOB_STATE_WAITING {
		j.WaitingSinceUnixMs = 0
	} else if j.State != pb.JobState_JOB_STATE_WAITING {
		j.WaitingSinceUnixMs = now
	}
	j.State, j.Reason, j.UpdatedUnixMs = st, reason, now
	j.Generation = 0
	delete(s.st.Generations, j.Id)
	s.releaseWorkers(j.Id)
}

func (s *Store) releaseWorkers(jobID string) {
	for _, w := range s.st.Workers {
		if w.JobId == jobID {
			w.JobId = ""
		}
	}
}

func (s *Store) registerWorker(w *pb.Worker, now int64) (proto.Message, error) {
	if w.GetId() == "" || w.GetAddress() == "" {
		return nil, fmt.Errorf("%w: worker id and address are required", ErrInvalidCommand)
	}
	if old, ok := s.st.Workers[w.Id]; ok {
		if old.State == pb.WorkerState_WORKER_STATE_ALIVE && old.Address != w.Address {
			return nil, fmt.Errorf("%w: %q is alive at %s", ErrDuplicateWorker, w.Id, old.Address)
		}
		// A re-registration is a restart: the worker lost its training
		// state, so it leaves its job and the scheduler makes a new
		// generation (with it again, as a joiner).
		old.Address, old.Cores, old.Labels, old.ProtocolVersion, old.MemoryBytes = w.Address, w.Cores, w.Labels, w.ProtocolVersion, w.MemoryBytes
		old.State, old.Reason, old.JobId = pb.WorkerState_WORKER_STATE_ALIVE, "", ""
		return old, nil
	}
	nw := proto.Clone(w).(*pb.Worker)
	nw.State, nw.Reason, nw.JobId, nw.RegisteredUnixMs = pb.WorkerState_WORKER_STATE_ALIVE, "", "", now
	s.st.Workers[nw.Id] = nw
	return nw, nil
}

func (s *Store) commitGeneration(g *pb.Generation, now int64) (proto.Message, error) {
	j, err := s.activeJob(g.GetJobId())
	if err != nil {
		return nil, err
	}
	if len(g.GetRanks()) == 0 || g.DpSize < 1 || g.TpSize < 1 || int(g.DpSize*g.TpSize) != len(g.Ranks) {
		return nil, fmt.Errorf("%w: %d ranks for dp %d × tp %d", ErrBadGeneration, len(g.GetRanks()), g.DpSize, g.TpSize)
	}
	seen := map[string]bool{}
	for i, r := range g.Ranks {
		w, ok := s.st.Workers[r.WorkerId]
		switch {
		case int(r.Rank) != i:
			return nil, fmt.Errorf("%w: rank %d listed at position %d", ErrBadGeneration, r.Rank, i)
		case !ok:
			return nil, fmt.Errorf("%w: rank %d: %w %q", ErrBadGeneration, i, ErrWorkerNotFound, r.WorkerId)
		case w.State != pb.WorkerState_WORKER_STATE_ALIVE:
			return nil, fmt.Errorf("%w: rank %d: worker %q is not alive", ErrBadGeneration, i, r.WorkerId)
		case w.JobId != "" && w.JobId != j.Id:
			return nil, fmt.Errorf("%w: worker %q belongs to job %s", ErrBadGeneration, r.WorkerId, w.JobId)
		case seen[r.WorkerId]:
			return nil, fmt.Errorf("%w: worker %q holds two ranks", ErrBadGeneration, r.WorkerId)
		}
		seen[r.WorkerId] = true
	}
	s.releaseWorkers(j.Id)
	ng := proto.Clone(g).(*pb.Generation)
	s.st.LastGeneration++
	ng.Number = s.st.LastGeneration
	ng.CreatedUnixMs = now
	for _, r := range ng.Ranks {
		s.st.Workers[r.WorkerId].JobId = j.Id
	}
	s.st.Generations[j.Id] = ng
	j.State, j.Reason, j.Generation, j.UpdatedUnixMs = pb.JobState_JOB_STATE_RUNNING, ng.Reason, ng.Number, now
	j.WaitingSinceUnixMs = 0
	j.Restarts = ng.Restarts
	return ng, nil
}

func (s *Store) commitCheckpoint(c *pb.Checkpoint, now int64) (proto.Message, error) {
	j, err := s.activeJob(c.GetJobId())
	if err != nil {
		return nil, err
	}
	list := s.st.Checkpoints[j.Id]
	if list == nil {
		list = &pb.CheckpointList{}
	}
	if n := len(list.Items); n > 0 && c.Step <= list.Items[n-1].Step {
		return nil, fmt.Errorf("%w: step %d, last committed %d", ErrStaleCheckpoint, c.Step, list.Items[n-1].Step)
	}
	if c.Step < 0 {
		return nil, fmt.Errorf("%w: negative step", ErrInvalidCommand)
	}
	nc := proto.Clone(c).(*pb.Checkpoint)
	nc.CommittedUnixMs = now
	list.Items = append(list.Items, nc)
	keep := 3
	if spec, err := JobSpec(j); err == nil && spec.Checkpoint.Keep > 0 {
		keep = spec.Checkpoint.Keep
	}
	if len(list.Items) > keep {
		list.Items = append([]*pb.Checkpoint(nil), list.Items[len(list.Items)-keep:]...)
	}
	s.st.Checkpoints[j.Id] = list
	j.CommittedStep, j.UpdatedUnixMs = c.Step, now
	if c.Final {
		s.setJobState(j, pb.JobState_JOB_STATE_COMPLETED, fmt.Sprintf("final checkpoint at step %d", c.Step), now)
	}
	return j, nil
}

// dropCheckpoint removes a committed checkpoint that can no longer be
// restored; the job's committed step becomes the newest one left (0: none,
// the job starts over).
func (s *Store) dropCheckpoint(c *pb.DropCheckpointCmd, now int64) (proto.Message, error) {
	j, err := s.activeJob(c.GetJobId())
	if err != nil {
		return nil, err
	}
	list := s.st.Checkpoints[j.Id]
	i := slices.IndexFunc(list.GetItems(), func(ck *pb.Checkpoint) bool { return ck.Step == c.GetStep() })
	if i < 0 {
		return nil, fmt.Errorf("%w: job %s has no committed checkpoint at step %d", ErrInvalidCommand, j.Id, c.GetStep())
	}
	list.Items = slices.Delete(list.Items, i, i+1)
	j.CommittedStep, j.UpdatedUnixMs = 0, now
	if n := len(list.Items); n > 0 {
		j.CommittedStep = list.Items[n-1].Step
	}
	return j, nil
}

// LatestCheckpoint returns a job's newest committed checkpoint, or nil.
func LatestCheckpoint(st *pb.ClusterState, jobID string) *pb.Checkpoint {
	l := st.GetCheckpoints()[jobID]
	if l == nil || len(l.Items) == 0 {
		return nil
	}
	return l.Items[len(l.Items)-1]
}

// StateName is a job state's short lower-case name ("running").
func StateName(s pb.JobState) string {
	switch s {
	case pb.JobState_JOB_STATE_QUEUED:
		return "queued"
	case pb.JobState_JOB_STATE_WAITING:
		return "waiting"
	case pb.JobState_JOB_STATE_RUNNING:
		return "running"
	case pb.JobState_JOB_STATE_COMPLETED:
		return "completed"
	case pb.JobState_JOB_STATE_FAILED:
		return "failed"
	case pb.JobState_JOB_STATE_CANCELLED:
		return "cancelled"
	}
	return "unspecified"
}

// sortedJobs returns the jobs in submission (FIFO) order.
func sortedJobs(st *pb.ClusterState) []*pb.Job {
	out := make([]*pb.Job, 0, len(st.Jobs))
	for _, j := range st.Jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Seq < out[b].Seq })
	return out
}

// SortedJobs returns the jobs in submission order.
func SortedJobs(st *pb.ClusterState) []*pb.Job { return sortedJobs(st) }

// SortedWorkers returns the workers ordered by id.
func SortedWorkers(st *pb.ClusterState) []*pb.Worker {
	out := make([]*pb.Worker, 0, len(st.Workers))
	for _, w := range st.Workers {
		out = append(out, w)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Id < out[b].Id })
	return out
}
