package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ControlSnapshot is what a coordinator knows at scrape time: its raft
// view, the replicated cluster state in counts, and (on the leader) the
// soft state from heartbeats.
type ControlSnapshot struct {
	RaftState                       string // Leader, Follower, Candidate, Shutdown
	Term, CommitIndex, AppliedIndex uint64
	LastContact                     time.Duration // since the leader was heard (0 on the leader)
	HasLeader                       bool
	Peers                           int            // voters
	WorkersByState, JobsByState     map[string]int // every state name present, zero counts included
	Jobs                            []JobSnapshot  // jobs not finished
	Heartbeats                      []HeartbeatAge // leader only
	Ranks                           []RankSnapshot // leader only: latest heartbeat of each rank
}

// JobSnapshot is one unfinished job.
type JobSnapshot struct {
	ID            string
	Generation    uint64
	CommittedStep int64
	MaxSteps      int
	Ranks         int
	// CheckpointAge: since the newest committed checkpoint, or the start of
	// the current generation or the submission if later (see coord).
	CheckpointAge      time.Duration
	CheckpointInterval int // checkpoint.interval, steps
}

// HeartbeatAge is the time since the leader last heard a live worker.
type HeartbeatAge struct {
	Worker string
	Age    time.Duration
}

// RankSnapshot is the latest heartbeat of one rank of a running job.
type RankSnapshot struct {
	Job          string
	Rank         int
	Worker       string
	Step         int64
	Loss         float64
	TokensPerSec float64
	StepSeconds  float64 // the rank's recent median step time
	// StragglerScore is the rank's compute time over its DP group's median
	// (0: not known yet).
	StragglerScore float64
}

// RaftStates are the values of RaftState's state label.
var RaftStates = []string{"Leader", "Follower", "Candidate", "Shutdown"}

// ControlPlane is a collector that asks for a ControlSnapshot on every
// scrape, so the series are never stale and finished jobs and forgotten
// workers disappear with no bookkeeping.
type ControlPlane struct {
	snap func() ControlSnapshot

	raftState, term, commit, applied, contact, peers, hasLeader *prometheus.Desc
	workers, jobs                                               *prometheus.Desc
	gen, committed, maxSteps, ranks, ckptAge, ckptInterval      *prometheus.Desc
	hbAge, rankStep, rankLoss, rankTPS, rankStepSecs, straggler *prometheus.Desc
}

// NewControlPlane returns the collector; register it on the coordinator's
// registry.
func NewControlPlane(snap func() ControlSnapshot) *ControlPlane {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &ControlPlane{
		snap:      snap,
		raftState: d(RaftState, "1 for this node's current raft state.", LabelState),
		term:      d(RaftTerm, "Current raft term."),
		commit:    d(RaftCommitIndex, "Highest raft log index known committed (the last log index on the leader)."),
		applied:   d(RaftAppliedIndex, "Last raft log index applied to the FSM."),
		contact:   d(RaftLastContactSecs, "Seconds since this node last heard from the leader (0 on the leader)."),
		peers:     d(RaftPeers, "Voters in the raft configuration."),
		hasLeader: d(RaftHasLeader, "1 while this node knows a leader."),
		workers:   d(ClusterWorkers, "Registered workers by state.", LabelState),
		jobs:      d(ClusterJobs, "Jobs by state.", LabelState),
		gen:       d(JobGeneration, "Current generation number of an unfinished job.", LabelJob),
		committed: d(JobCommittedStep, "Step of the job's newest committed checkpoint.", LabelJob),
		maxSteps:  d(JobMaxSteps, "The job's train.max_iters.", LabelJob),
		ranks:     d(JobRanks, "Ranks in the job's current generation (0: none).", LabelJob),
		ckptAge: d(JobCheckpointAge, "Seconds since the job's newest committed checkpoint (or since its current generation started or it was submitted, if later).",
			LabelJob),
		ckptInterval: d(JobCheckpointInterval, "The job's checkpoint.interval in steps (0: no periodic checkpoints).", LabelJob),
		hbAge:        d(WorkerHeartbeatAge, "Seconds since the leader last heard a live worker (leader only).", LabelWorker),
		rankStep:     d(RankStep, "Step of a rank's latest heartbeat (leader only).", LabelJob, LabelRank, LabelWorker),
		rankLoss:     d(RankLoss, "Training loss of a rank's latest heartbeat (leader only).", LabelJob, LabelRank, LabelWorker),
		rankTPS:      d(RankTokensPerSecond, "Job tokens/s of a rank's latest heartbeat (leader only).", LabelJob, LabelRank, LabelWorker),
		rankStepSecs: d(RankStepSeconds, "A rank's recent median step time from its heartbeat (leader only).",
			LabelJob, LabelRank, LabelWorker),
		straggler: d(RankStragglerScore, "A rank's compute seconds per step over the median of its data-parallel group; 1 is typical, 1.5 is slow (leader only).",
			LabelJob, LabelRank, LabelWorker),
	}
}

// Describe implements prometheus.Collector.
func (c *ControlPlane) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.raftState, c.term, c.commit, c.applied, c.contact, c.peers, c.hasLeader,
		c.workers, c.jobs, c.gen, c.committed, c.maxSteps, c.ranks, c.ckptAge, c.ckptInterval,
		c.hbAge, c.rankStep, c.rankLoss, c.rankTPS, c.rankStepSecs, c.straggler} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ControlPlane) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	g := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	for _, st := range RaftStates {
		g(c.raftState, b(st == s.RaftState), st)
	}
	g(c.term, float64(s.Term))
	g(c.commit, float64(s.CommitIndex))
	g(c.applied, float64(s.AppliedIndex))
	g(c.contact, s.LastContact.Seconds())
	g(c.peers, float64(s.Peers))
	g(c.hasLeader, b(s.HasLeader))
	for st, n := range s.WorkersByState {
		g(c.workers, float64(n), st)
	}
	for st, n := range s.JobsByState {
		g(c.jobs, float64(n), st)
	}
	for _, j := range s.Jobs {
		g(c.gen, float64(j.Generation), j.ID)
		g(c.committed, float64(j.CommittedStep), j.ID)
		g(c.maxSteps, float64(j.MaxSteps), j.ID)
		g(c.ranks, float64(j.Ranks), j.ID)
		g(c.ckptAge, j.CheckpointAge.Seconds(), j.ID)
		g(c.ckptInterval, float64(j.CheckpointInterval), j.ID)
	}
	for _, h := range s.Heartbeats {
		g(c.hbAge, h.Age.Seconds(), h.Worker)
	}
	for _, r := range s.Ranks {
		rank := strconv.Itoa(r.Rank)
		g(c.rankStep, float64(r.Step), r.Job, rank, r.Worker)
		g(c.rankLoss, r.Loss, r.Job, rank, r.Worker)
		g(c.rankTPS, r.TokensPerSec, r.Job, rank, r.Worker)
		if r.StepSeconds > 0 {
			g(c.rankStepSecs, r.StepSeconds, r.Job, rank, r.Worker)
		}
		if r.StragglerScore > 0 {
			g(c.straggler, r.StragglerScore, r.Job, rank, r.Worker)
		}
	}
}
