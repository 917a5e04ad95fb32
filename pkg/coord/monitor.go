package coord

import (
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// MetricsSnapshot is this node's control-plane view for a scrape
// (metrics.NewControlPlane): raft, the replicated state in counts and, on
// the leader, heartbeat ages and each rank's latest progress.
func (n *Node) MetricsSnapshot() metrics.ControlSnapshot {
	now := n.cfg.Now()
	state := n.raft.State()
	lid, _ := n.Leader()
	s := metrics.ControlSnapshot{
		RaftState: state.String(), AppliedIndex: n.raft.AppliedIndex(), HasLeader: lid != "",
		WorkersByState: map[string]int{"alive": 0, "lost": 0},
		JobsByState:    map[string]int{},
	}
	stats := n.raft.Stats()
	s.Term, _ = strconv.ParseUint(stats["term"], 10, 64)
	s.CommitIndex, _ = strconv.ParseUint(stats["commit_index"], 10, 64)
	if state != raft.Leader {
		if lc := n.raft.LastContact(); !lc.IsZero() {
			s.LastContact = now.Sub(lc)
		}
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				s.Peers++
			}
		}
	}
	for _, js := range []pb.JobState{pb.JobState_JOB_STATE_QUEUED, pb.JobState_JOB_STATE_WAITING, pb.JobState_JOB_STATE_RUNNING,
		pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED} {
		s.JobsByState[StateName(js)] = 0
	}
	var ranks []*pb.Generation
	n.fsm.Read(func(st *pb.ClusterState) {
		for _, w := range st.Workers {
			if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
				s.WorkersByState["alive"]++
			} else {
				s.WorkersByState["lost"]++
			}
		}
		for _, j := range sortedJobs(st) {
			s.JobsByState[StateName(j.State)]++
			if Terminal(j.State) {
				continue
			}
			js := metrics.JobSnapshot{ID: j.Id, Generation: j.Generation, CommittedStep: j.CommittedStep}
			if spec, err := JobSpec(j); err == nil {
				js.MaxSteps = spec.Train.MaxIters
				js.CheckpointInterval = spec.Checkpoint.Interval
			}
			g := st.Generations[j.Id]
			js.CheckpointAge = checkpointAge(now, j, g, st.Checkpoints[j.Id])
			if g != nil {
				js.Ranks = len(g.Ranks)
				ranks = append(ranks, g) // generations are replaced, never mutated
			}
			s.Jobs = append(s.Jobs, js)
		}
	})
	l := n.leader()
	if l == nil {
		return s
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, t := range l.heard {
		if l.det.Watching(id) {
			s.Heartbeats = append(s.Heartbeats, metrics.HeartbeatAge{Worker: id, Age: now.Sub(t)})
		}
	}
	sort.Slice(s.Heartbeats, func(a, b int) bool { return s.Heartbeats[a].Worker < s.Heartbeats[b].Worker })
	for _, g := range ranks {
		heard := make([]*pb.WorkerMessage, len(g.Ranks))
		for i, r := range g.Ranks {
			if m := l.progress[r.WorkerId]; m != nil && m.Generation == g.Number {
				heard[i] = m // nil: not heard in this generation yet
			}
		}
		scores := StragglerScores(g, heard)
		for i, r := range g.Ranks {
			m := heard[i]
			if m == nil {
				continue
			}
			s.Ranks = append(s.Ranks, metrics.RankSnapshot{
				Job: g.JobId, Rank: int(r.Rank), Worker: r.WorkerId, Step: m.Step, Loss: m.Loss, TokensPerSec: m.TokensPerSec,
				StepSeconds: m.StepSeconds, StragglerScore: scores[i],
			})
		}
	}
	return s
}

// checkpointAge is how long the job has gone without a new committed
// checkpoint: since the newest one was committed, or, when the current
// generation started later (a restart, which resumes from it), since then,
// or since submission when nothing is committed. A restart resets it so an
// alert measures what this generation has failed to save.
func checkpointAge(now time.Time, j *pb.Job, g *pb.Generation, list *pb.CheckpointList) time.Duration {
	since := j.SubmittedUnixMs
	if g != nil {
		since = max(since, g.CreatedUnixMs)
	}
	if n := len(list.GetItems()); n > 0 {
		since = max(since, list.Items[n-1].CommittedUnixMs)
	}
	if since <= 0 {
		return 0
	}
	return max(now.Sub(time.UnixMilli(since)), 0)
}

// StragglerScores returns, for each rank of g, its compute seconds over the
// median compute seconds of its data-parallel group (the ranks with the
// same tensor-parallel coordinate, which run the same work on different
// rows), or 0 where the rank or its group has not reported. Compute, not
// wall step time: in a synchronous job every rank waits for the slowest in
// its collectives, so wall step times are equal and only compute shows who
// is slow. heard is indexed by rank; nil entries have not reported.
func StragglerScores(g *pb.Generation, heard []*pb.WorkerMessage) []float64 {
	scores := make([]float64, len(g.Ranks))
	groups := map[int32][]int{} // tp coordinate → ranks
	for i, r := range g.Ranks {
		groups[r.Tp] = append(groups[r.Tp], i)
	}
	for _, ranks := range groups {
		var compute []float64
		for _, i := range ranks {
			if i < len(heard) && heard[i] != nil && heard[i].ComputeSeconds > 0 {
				compute = append(compute, heard[i].ComputeSeconds)
			}
		}
		if len(compute) == 0 {
			continue
		}
		sort.Float64s(compute)
		med := compute[len(compute)/2]
		if len(compute)%2 == 0 {
			med = (compute[len(compute)/2-1] + compute[len(compute)/2]) / 2
		}
		for _, i := range ranks {
			if i < len(heard) && heard[i] != nil && heard[i].ComputeSeconds > 0 && med > 0 {
				scores[i] = heard[i].ComputeSeconds / med
			}
		}
	}
	return scores
}
