package coord

import (
	"sort"
	"strconv"

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
			}
			if g := st.Generations[j.Id]; g != nil {
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
		for _, r := range g.Ranks {
			m := l.progress[r.WorkerId]
			if m == nil || m.Generation != g.Number {
				continue // not heard in this generation yet
			}
			s.Ranks = append(s.Ranks, metrics.RankSnapshot{
				Job: g.JobId, Rank: int(r.Rank), Worker: r.WorkerId, Step: m.Step, Loss: m.Loss, TokensPerSec: m.TokensPerSec,
			})
		}
	}
	return s
}
