package coord

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// TestControlPlaneMetrics scrapes a real /metrics of a one-node group with
// a job and a worker heartbeating its generation: the raft, job, heartbeat
// and per-rank series are there and follow the heartbeats.
func TestControlPlaneMetrics(t *testing.T) {
	nodes := newTestNodes(t, 1)
	nodes[0].start(t, peersOf(nodes), "")
	waitFor(t, "a leader", 10*time.Second, func() bool { return leaderOf(nodes) != nil })
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewControlPlane(nodes[0].node.MetricsSnapshot))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	cl := NewClient(grpcAddrs(nodes))
	defer cl.Close()
	job, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(specYAML))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.RegisterWorker(ctxT(t, 10*time.Second), &pb.RegisterWorkerRequest{WorkerId: "w1", Address: "w1.peer:9000", Cores: 1, ProtocolVersion: ProtocolVersion}); err != nil {
		t.Fatal(err)
	}
	var gen atomic.Uint64
	var step atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // owned here: ends with cancel
		defer close(done)
		_ = cl.KeepSession(ctx, "w1", 50*time.Millisecond, func() *pb.WorkerMessage {
			return &pb.WorkerMessage{Generation: gen.Load(), Step: step.Load(), Loss: 2.5, TokensPerSec: 1234,
				StepSeconds: 0.25, ComputeSeconds: 0.2}
		}, func(a *pb.Assignment) { gen.Store(a.GetGeneration().GetNumber()) })
	}()
	defer func() { cancel(); <-done }()

	series := func() map[string]float64 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for name, f := range fams {
			for _, m := range f.Metric {
				key := name
				for _, lp := range m.Label {
					key += "," + lp.GetName() + "=" + lp.GetValue()
				}
				out[key] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	rankKey := metrics.RankStep + ",job_id=" + job.Id + ",rank=0,worker=w1"
	var s map[string]float64
	waitFor(t, "the rank's step exported", 20*time.Second, func() bool {
		step.Store(7)
		s = series()
		return s[rankKey] == 7
	})
	for key, want := range map[string]float64{
		metrics.RaftState + ",state=Leader":                                 1,
		metrics.RaftState + ",state=Follower":                               0,
		metrics.RaftHasLeader:                                               1,
		metrics.RaftPeers:                                                   1,
		metrics.ClusterWorkers + ",state=alive":                             1,
		metrics.ClusterJobs + ",state=running":                              1,
		metrics.JobGeneration + ",job_id=" + job.Id:                         float64(gen.Load()),
		metrics.JobMaxSteps + ",job_id=" + job.Id:                           10,
		metrics.JobRanks + ",job_id=" + job.Id:                              1,
		metrics.RankLoss + ",job_id=" + job.Id + ",rank=0,worker=w1":        2.5,
		metrics.RankStepSeconds + ",job_id=" + job.Id + ",rank=0,worker=w1": 0.25,
		// alone in its DP group: its own median
		metrics.RankStragglerScore + ",job_id=" + job.Id + ",rank=0,worker=w1": 1,
	} {
		if got, ok := s[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if s[metrics.RaftTerm] < 1 || s[metrics.RaftAppliedIndex] < 1 || s[metrics.RaftCommitIndex] < s[metrics.RaftAppliedIndex] {
		t.Errorf("raft term %v, commit %v, applied %v", s[metrics.RaftTerm], s[metrics.RaftCommitIndex], s[metrics.RaftAppliedIndex])
	}
	age, ok := s[metrics.WorkerHeartbeatAge+",worker=w1"]
	if !ok || age < 0 || age > 5 {
		t.Errorf("heartbeat age of w1 = %v (present %v), want a few heartbeat intervals", age, ok)
	}
	// No checkpoint is committed: the age counts from the generation's start
	// (after the submission), so it is small and grows.
	ageKey := metrics.JobCheckpointAge + ",job_id=" + job.Id
	ckptAge, ok := s[ageKey]
	if !ok || ckptAge < 0 || ckptAge > 60 {
		t.Errorf("checkpoint age %v (present %v), want the seconds since the generation started", ckptAge, ok)
	}
	waitFor(t, "the checkpoint age to grow", 10*time.Second, func() bool { return series()[ageKey] > ckptAge+0.2 })
	// The series move with the heartbeats.
	waitFor(t, "the rank's step to move", 10*time.Second, func() bool {
		step.Store(9)
		return series()[rankKey] == 9
	})
	// A worker that stops heartbeating ages.
	cancel()
	<-done
	waitFor(t, "w1's heartbeat age to grow", 10*time.Second, func() bool {
		a, ok := series()[metrics.WorkerHeartbeatAge+",worker=w1"]
		return !ok || a > age+0.3
	})
}

func TestStragglerScoresCompareComputeWithinDPGroups(t *testing.T) {
	// DP 3 × TP 2: ranks (dp, tp) = (0,0) (0,1) (1,0) (1,1) (2,0) (2,1).
	g := &pb.Generation{}
	for r := range 6 {
		g.Ranks = append(g.Ranks, &pb.Rank{Rank: int32(r), Dp: int32(r / 2), Tp: int32(r % 2)})
	}
	msg := func(compute float64) *pb.WorkerMessage {
		// Wall step time is the same everywhere in a synchronous job.
		return &pb.WorkerMessage{StepSeconds: 1, ComputeSeconds: compute}
	}
	// tp 0 group: 0.5, 0.5, 1.0 → median 0.5; tp 1 group: 0.8, 0.4, (not heard).
	heard := []*pb.WorkerMessage{msg(0.5), msg(0.8), msg(0.5), msg(0.4), msg(1.0), nil}
	got := StragglerScores(g, heard)
	want := []float64{1, 0.8 / 0.6, 1, 0.4 / 0.6, 2, 0}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Errorf("rank %d: score %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
}

func TestCheckpointAgeCountsFromTheNewestOfSubmitGenerationAndCommit(t *testing.T) {
	at := func(s int64) int64 { return time.Unix(s, 0).UnixMilli() }
	now := time.Unix(1000, 0)
	j := &pb.Job{SubmittedUnixMs: at(100)}
	if got := checkpointAge(now, j, nil, nil); got != 900*time.Second {
		t.Errorf("queued: %v, want 900s since submission", got)
	}
	g := &pb.Generation{CreatedUnixMs: at(400)}
	if got := checkpointAge(now, j, g, nil); got != 600*time.Second {
		t.Errorf("running, nothing committed: %v, want 600s since the generation", got)
	}
	list := &pb.CheckpointList{Items: []*pb.Checkpoint{{Step: 10, CommittedUnixMs: at(700)}, {Step: 20, CommittedUnixMs: at(900)}}}
	if got := checkpointAge(now, j, g, list); got != 100*time.Second {
		t.Errorf("committed at 900: %v, want 100s", got)
	}
	g.CreatedUnixMs = at(950) // a restart resumes from the commit: count from it
	if got := checkpointAge(now, j, g, list); got != 50*time.Second {
		t.Errorf("restarted at 950: %v, want 50s", got)
	}
}
