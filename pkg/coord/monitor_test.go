package coord

import (
	"context"
	"io"
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
			return &pb.WorkerMessage{Generation: gen.Load(), Step: step.Load(), Loss: 2.5, TokensPerSec: 1234}
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
		metrics.RaftState + ",state=Leader":                          1,
		metrics.RaftState + ",state=Follower":                        0,
		metrics.RaftHasLeader:                                        1,
		metrics.RaftPeers:                                            1,
		metrics.ClusterWorkers + ",state=alive":                      1,
		metrics.ClusterJobs + ",state=running":                       1,
		metrics.JobGeneration + ",job_id=" + job.Id:                  float64(gen.Load()),
		metrics.JobMaxSteps + ",job_id=" + job.Id:                    10,
		metrics.JobRanks + ",job_id=" + job.Id:                       1,
		metrics.RankLoss + ",job_id=" + job.Id + ",rank=0,worker=w1": 2.5,
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
