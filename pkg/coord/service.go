package coord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Trailer keys a follower (or a leader that lost its quorum) sets on a
// write it did not perform.
const (
	// TrailerLeader is set when the request was not applied and is safe to
	// retry; its value is the leader's gRPC address ("" when unknown).
	TrailerLeader = "ringmaster-leader"
	// TrailerOutcome is "unknown" when the write reached raft but its commit
	// could not be confirmed: it must not be blindly retried.
	TrailerOutcome = "ringmaster-outcome"
)

// Service is the coordinator gRPC API over a Node. Reads are answered from
// the local replica by any node; writes and worker sessions need the leader.
type Service struct {
	pb.UnimplementedCoordinatorServer
	n   *Node
	log *slog.Logger
}

// NewService returns the API over n.
func NewService(n *Node) *Service { return &Service{n: n, log: n.log} }

// Register adds the Coordinator service and the standard health service to gs.
func (s *Service) Register(gs *grpc.Server) *health.Server {
	pb.RegisterCoordinatorServer(gs, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(pb.Coordinator_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	return hs
}

// statusOf maps an error to a gRPC status and sets the redirect trailers.
func statusOf(err error) (md metadata.MD, st error) {
	var nl *NotLeaderError
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &nl):
		return metadata.Pairs(TrailerLeader, nl.LeaderGRPC), status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrOutcomeUnknown):
		return metadata.Pairs(TrailerOutcome, "unknown"), status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrNoQuorum):
		return metadata.Pairs(TrailerLeader, ""), status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrJobNotFound), errors.Is(err, ErrWorkerNotFound), errors.Is(err, ErrCoordinatorAbsent):
		return nil, status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrJobExists), errors.Is(err, ErrDuplicateWorker):
		return nil, status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, ErrJobFinished), errors.Is(err, ErrProtocolVersion), errors.Is(err, ErrModelConfigHash),
		errors.Is(err, ErrStaleCheckpoint):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrInvalidCommand), errors.Is(err, ErrBadGeneration):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return nil, status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return nil, status.Error(codes.Canceled, err.Error())
	}
	return nil, status.Error(codes.Internal, err.Error())
}

func fail(ctx context.Context, err error) error {
	md, st := statusOf(err)
	if md != nil {
		_ = grpc.SetTrailer(ctx, md)
	}
	return st
}

func (s *Service) apply(ctx context.Context, c *pb.Command) (proto.Message, error) {
	return s.n.Apply(ctx, c)
}

// SubmitJob parses and validates the spec, then commits it.
func (s *Service) SubmitJob(ctx context.Context, req *pb.SubmitJobRequest) (*pb.SubmitJobResponse, error) {
	spec, err := jobspec.Parse(req.GetSpec())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.n.CatchUp(ctx); err != nil { // admit against the workers the leader knows
		return nil, fail(ctx, err)
	}
	var admitErr, fromErr error
	var from *pb.Checkpoint
	s.n.fsm.Read(func(st *pb.ClusterState) {
		admitErr = Admit(st, spec)
		if req.GetFromJob() != "" {
			from, fromErr = InitCheckpoint(st, spec, req.GetFromJob(), req.GetFromStep())
		}
	})
	if admitErr != nil {
		return nil, status.Error(codes.InvalidArgument, admitErr.Error())
	}
	if fromErr != nil {
		return nil, status.Error(codes.InvalidArgument, fromErr.Error())
	}
	msg, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_SubmitJob{SubmitJob: &pb.SubmitJobCmd{
		SpecJson: spec.Marshal(), ModelConfigHash: spec.ModelHash(), InitFrom: from}}})
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &pb.SubmitJobResponse{Job: msg.(*pb.Job)}, nil
}

// GetJob reads a job from the local replica (caught up with the leader).
func (s *Service) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.GetJobResponse, error) {
	if err := s.n.CatchUp(ctx); err != nil {
		return nil, fail(ctx, err)
	}
	var out *pb.GetJobResponse
	s.n.fsm.Read(func(st *pb.ClusterState) {
		j := st.Jobs[req.GetJobId()]
		if j == nil {
			return
		}
		out = &pb.GetJobResponse{Job: proto.Clone(j).(*pb.Job)}
		if g := st.Generations[j.Id]; g != nil {
			out.Generation = proto.Clone(g).(*pb.Generation)
		}
		if l := st.Checkpoints[j.Id]; l != nil {
			for _, c := range l.Items {
				out.Checkpoints = append(out.Checkpoints, proto.Clone(c).(*pb.Checkpoint))
			}
		}
	})
	if out == nil {
		return nil, fail(ctx, fmt.Errorf("%w: %q", ErrJobNotFound, req.GetJobId()))
	}
	if out.Generation != nil {
		out.Progress = s.n.Progress(out.Generation.Ranks)
	}
	return out, nil
}

// ListJobs lists jobs in submission order from the local replica.
func (s *Service) ListJobs(ctx context.Context, _ *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	if err := s.n.CatchUp(ctx); err != nil {
		return nil, fail(ctx, err)
	}
	out := &pb.ListJobsResponse{}
	s.n.fsm.Read(func(st *pb.ClusterState) {
		for _, j := range sortedJobs(st) {
			out.Jobs = append(out.Jobs, proto.Clone(j).(*pb.Job))
		}
	})
	return out, nil
}

// CancelJob cancels a job and frees its workers.
func (s *Service) CancelJob(ctx context.Context, req *pb.CancelJobRequest) (*pb.CancelJobResponse, error) {
	msg, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_CancelJob{CancelJob: &pb.CancelJobCmd{
		JobId: req.GetJobId(), Reason: req.GetReason()}}})
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &pb.CancelJobResponse{Job: msg.(*pb.Job)}, nil
}

// ListWorkers lists workers by id from the local replica.
func (s *Service) ListWorkers(ctx context.Context, _ *pb.ListWorkersRequest) (*pb.ListWorkersResponse, error) {
	if err := s.n.CatchUp(ctx); err != nil {
		return nil, fail(ctx, err)
	}
	out := &pb.ListWorkersResponse{}
	s.n.fsm.Read(func(st *pb.ClusterState) {
		for _, w := range SortedWorkers(st) {
			out.Workers = append(out.Workers, proto.Clone(w).(*pb.Worker))
		}
	})
	return out, nil
}

// RegisterWorker checks the protocol version (and, when the worker names a
// job, its model config hash) and commits the worker.
func (s *Service) RegisterWorker(ctx context.Context, req *pb.RegisterWorkerRequest) (*pb.RegisterWorkerResponse, error) {
	switch {
	case req.GetWorkerId() == "" || req.GetAddress() == "":
		return nil, status.Error(codes.InvalidArgument, "worker_id and address are required")
	case req.GetCores() < 0:
		return nil, status.Errorf(codes.InvalidArgument, "cores must be ≥ 0, got %d", req.GetCores())
	case req.GetMemoryBytes() < 0:
		return nil, status.Errorf(codes.InvalidArgument, "memory_bytes must be ≥ 0, got %d", req.GetMemoryBytes())
	case req.GetProtocolVersion() != ProtocolVersion:
		return nil, fail(ctx, fmt.Errorf("%w: worker speaks %d, coordinator %d", ErrProtocolVersion, req.GetProtocolVersion(), ProtocolVersion))
	}
	if req.GetJobId() != "" {
		var want string
		var found bool
		s.n.fsm.Read(func(st *pb.ClusterState) {
			j := st.Jobs[req.GetJobId()]
			found = j != nil
			want = j.GetModelConfigHash()
		})
		if !found {
			return nil, fail(ctx, fmt.Errorf("%w: %q", ErrJobNotFound, req.GetJobId()))
		}
		if want != req.GetModelConfigHash() {
			return nil, fail(ctx, fmt.Errorf("%w: job %s has %.12s…, worker %.12s…", ErrModelConfigHash, req.GetJobId(), want, req.GetModelConfigHash()))
		}
	}
	msg, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_RegisterWorker{RegisterWorker: &pb.RegisterWorkerCmd{Worker: &pb.Worker{
		Id: req.WorkerId, Address: req.Address, Cores: req.Cores, Labels: req.Labels, ProtocolVersion: req.ProtocolVersion,
		MemoryBytes: req.MemoryBytes}}}})
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &pb.RegisterWorkerResponse{Worker: msg.(*pb.Worker), ProtocolVersion: ProtocolVersion}, nil
}

// AssignmentFor is what worker id should be doing in st.
func AssignmentFor(st *pb.ClusterState, id string) *pb.Assignment {
	a := &pb.Assignment{Rank: -1}
	w := st.Workers[id]
	if w == nil || w.JobId == "" {
		return a
	}
	j, g := st.Jobs[w.JobId], st.Generations[w.JobId]
	if j == nil || g == nil {
		return a
	}
	a.JobId, a.SpecJson, a.Generation = j.Id, j.SpecJson, proto.Clone(g).(*pb.Generation)
	for _, r := range g.Ranks {
		if r.WorkerId == id {
			a.Rank = r.Rank
		}
	}
	return a
}

// reviveIfLost marks a worker alive again when it heartbeats on a session
// the leader had given up on: a process paused (SIGSTOP, a long GC or swap
// storm) past the heartbeat timeout keeps its stream open, and its
// heartbeats after it resumes used to be accepted and ignored, leaving it
// idle and "lost" until it restarted. Alive, it is a spare for the next
// generation; its old generation has already been replaced.
func (s *Service) reviveIfLost(ctx context.Context, id string) {
	lost := false
	s.n.fsm.Read(func(st *pb.ClusterState) {
		w := st.Workers[id]
		lost = w != nil && w.State == pb.WorkerState_WORKER_STATE_LOST
	})
	if !lost {
		return
	}
	if _, held := s.n.cutOffUntil(id); held {
		return // its peers could not reach it; a later heartbeat revives it
	}
	if _, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{
		WorkerId: id, State: pb.WorkerState_WORKER_STATE_ALIVE, Reason: "heartbeat again after being lost (paused?)"}}}); err != nil {
		s.log.Warn("revive worker", "worker", id, "err", err)
		return
	}
	s.log.Info("worker back after being lost", "worker", id)
}

// WorkerSession receives heartbeats and pushes assignments. It runs on the
// leader only; elsewhere it fails with a redirect.
func (s *Service) WorkerSession(stream pb.Coordinator_WorkerSessionServer) error {
	ctx := stream.Context()
	failStream := func(err error) error {
		md, st := statusOf(err)
		if md != nil {
			stream.SetTrailer(md)
		}
		return st
	}
	if s.n.leader() == nil {
		return failStream(s.n.notLeader())
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	id := first.GetWorkerId()
	var w *pb.Worker
	s.n.fsm.Read(func(st *pb.ClusterState) {
		if x := st.Workers[id]; x != nil {
			w = proto.Clone(x).(*pb.Worker)
		}
	})
	if w == nil {
		return failStream(fmt.Errorf("%w: %q: register first", ErrWorkerNotFound, id))
	}
	if w.State != pb.WorkerState_WORKER_STATE_ALIVE {
		if _, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{
			WorkerId: id, State: pb.WorkerState_WORKER_STATE_ALIVE, Reason: "session reopened"}}}); err != nil {
			return failStream(err)
		}
		s.log.Info("worker rejoined", "worker", id)
	}
	if err := s.n.Heartbeat(first); err != nil {
		return failStream(err)
	}
	s.n.sessionOpened(id)
	broken := true // a clean end (EOF, or a goodbye heartbeat) clears it
	defer func() { s.n.sessionClosed(id, broken) }()
	if first.Leaving {
		broken = false
	}
	var leaving atomic.Bool
	defer func() {
		if leaving.Load() {
			broken = false
		}
	}()
	recvErr := make(chan error, 1)
	go func() { // owned by this handler: Recv fails once the handler returns
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			m.WorkerId = id
			if m.Leaving {
				leaving.Store(true)
			}
			if err := s.n.Heartbeat(m); err != nil {
				recvErr <- err
				return
			}
			if !m.Leaving {
				s.reviveIfLost(ctx, id)
			}
			if u := m.CheckpointUnavailable; u != nil {
				s.dropUnavailable(ctx, id, u)
			}
			if m.FatalError != "" {
				a := AssignmentFor(s.stateView(), id)
				if a.JobId != "" {
					_, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
						JobId: a.JobId, State: pb.JobState_JOB_STATE_FAILED, Reason: fmt.Sprintf("worker %s: %s", id, m.FatalError)}}})
					if err != nil {
						s.log.Warn("fail job", "job", a.JobId, "err", err)
					}
				}
			}
		}
	}()
	check := time.NewTicker(250 * time.Millisecond)
	defer check.Stop()
	var sent *pb.Assignment
	for {
		st, changed := s.n.fsm.View()
		a := AssignmentFor(st, id)
		if sent == nil || !proto.Equal(a, sent) {
			if err := stream.Send(a); err != nil {
				return err
			}
			sent = a
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				broken = false
				return nil
			}
			if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
				return err
			}
			return failStream(err)
		case <-changed:
		case <-check.C:
			if s.n.leader() == nil {
				return failStream(s.n.notLeader())
			}
		}
	}
}

func (s *Service) stateView() *pb.ClusterState {
	st, _ := s.n.fsm.View()
	return st
}

// ReportCheckpoint records a durable shard on the leader.
func (s *Service) ReportCheckpoint(ctx context.Context, req *pb.ReportCheckpointRequest) (*pb.ReportCheckpointResponse, error) {
	if req.GetWorkerId() == "" || req.GetJobId() == "" || req.GetStep() < 0 || req.GetTp() < 0 {
		return nil, status.Error(codes.InvalidArgument, "worker_id, job_id, step ≥ 0 and tp ≥ 0 are required")
	}
	ok, err := s.n.ReportCheckpoint(ctx, req)
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &pb.ReportCheckpointResponse{Committed: ok}, nil
}

// Status describes this node and the group.
func (s *Service) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	return s.n.Status(), nil
}

// JoinCoordinator adds a coordinator (leader only).
func (s *Service) JoinCoordinator(ctx context.Context, req *pb.JoinCoordinatorRequest) (*pb.JoinCoordinatorResponse, error) {
	idx, err := s.n.AddMember(ctx, req)
	if err != nil {
		return nil, fail(ctx, err)
	}
	return &pb.JoinCoordinatorResponse{LeaderLastIndex: idx}, nil
}

// RemoveCoordinator removes a coordinator (leader only).
func (s *Service) RemoveCoordinator(ctx context.Context, req *pb.RemoveCoordinatorRequest) (*pb.RemoveCoordinatorResponse, error) {
	if err := s.n.RemoveMember(ctx, req.GetId()); err != nil {
		return nil, fail(ctx, err)
	}
	return &pb.RemoveCoordinatorResponse{}, nil
}

// dropUnavailable acts on a worker's report that no correct copy of its
// shard of the resume step exists: while that step is still the job's
// newest committed checkpoint and the generation resuming from it is the
// current one, the checkpoint is dropped, and the scheduler makes a
// generation that resumes from the previous one. Reports about an older
// generation or an already dropped step change nothing.
func (s *Service) dropUnavailable(ctx context.Context, worker string, u *pb.CheckpointUnavailable) {
	st := s.stateView()
	a := AssignmentFor(st, worker)
	g := st.Generations[a.JobId]
	if a.JobId == "" || g == nil || g.Number != u.Generation || g.ResumeStep != u.Step {
		return
	}
	reason := fmt.Sprintf("worker %s found no correct copy of tp shard %d: %s", worker, u.Tp, u.Reason)
	if g.ResumeJob != "" && g.ResumeJob != a.JobId {
		// The checkpoint this job was submitted --from is gone: nothing
		// older of that job was asked for, so the job cannot start.
		if _, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
			JobId: a.JobId, State: pb.JobState_JOB_STATE_FAILED,
			Reason: fmt.Sprintf("the checkpoint it starts from, %s@%d, cannot be restored (%s); submit again --from another committed step", g.ResumeJob, u.Step, reason)}}}); err != nil {
			s.log.Warn("fail job", "job", a.JobId, "err", err)
		}
		return
	}
	if ck := LatestCheckpoint(st, a.JobId); ck == nil || ck.Step != u.Step {
		return
	}
	if _, err := s.apply(ctx, &pb.Command{Cmd: &pb.Command_DropCheckpoint{DropCheckpoint: &pb.DropCheckpointCmd{
		JobId: a.JobId, Step: u.Step, Reason: reason}}}); err != nil {
		s.log.Warn("drop unavailable checkpoint", "job", a.JobId, "step", u.Step, "err", err)
		return
	}
	s.log.Error("committed checkpoint unavailable; the job falls back to the previous one", "job", a.JobId, "step", u.Step, "reason", reason)
}
