package metrics

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from a real HTTP server and parses it.
func scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the value of the series of family name with the given
// labels (name=value pairs), and whether it exists.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func serve(t testing.TB, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func TestTrainingSeriesMoveOnScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm := NewTraining(reg, 100e9)
	url := serve(t, reg)
	fpt := FLOPsPerToken(1000, 2, 2, 8, 16)
	j := tm.Job("job-1", 1, 2, 7, fpt)
	lab := []string{LabelJob, "job-1", LabelRank, "1"}
	// Before the first step there is no loss (not a 0 one), no val loss
	// before the first evaluation.
	fams0 := scrape(t, url)
	for _, name := range []string{TrainLoss, TrainValLoss, TrainGradNorm, TrainMFU} {
		if v, ok := value(fams0, name, lab...); ok {
			t.Errorf("%s = %v exported before the first step", name, v)
		}
	}
	for i, loss := range []float64{4.2, 3.1} {
		j.Observe(&Step{Next: i + 1, Loss: loss, LR: 1e-3, GradNorm: 0.5, Tokens: 512, TokensPerSec: 2e4,
			Duration: 20 * time.Millisecond, ForwardBackward: 15 * time.Millisecond, Optimizer: 2 * time.Millisecond,
			DPWindow: 6 * time.Millisecond, DPExposed: 2 * time.Millisecond})
		fams := scrape(t, url)
		checks := []struct {
			name string
			want float64
		}{
			{TrainLoss, loss}, {TrainStep, float64(i + 1)}, {TrainTokensTotal, float64(512 * (i + 1))},
			{TrainStepSeconds, float64(i + 1)}, {TrainGeneration, 7}, {TrainFLOPsPerToken, 6*1000 + 12*2*2*8*16},
			{TrainMFU, 2e4 * fpt / (2 * 100e9)}, {TrainLearningRate, 1e-3}, {TrainGradNorm, 0.5},
		}
		for _, c := range checks {
			got, ok := value(fams, c.name, lab...)
			if !ok || math.Abs(got-c.want) > 1e-12*math.Max(1, math.Abs(c.want)) {
				t.Errorf("after step %d: %s = %v (present %v), want %v", i+1, c.name, got, ok, c.want)
			}
		}
		hidden, _ := value(fams, TrainPhaseSeconds, append(lab, LabelPhase, PhaseCommDPHidden)...)
		exposed, _ := value(fams, TrainPhaseSeconds, append(lab, LabelPhase, PhaseCommDPExposed)...)
		if want := 0.004 * float64(i+1); math.Abs(hidden-want) > 1e-9 {
			t.Errorf("hidden communication %v s, want %v", hidden, want)
		}
		if want := 0.002 * float64(i+1); math.Abs(exposed-want) > 1e-9 {
			t.Errorf("exposed communication %v s, want %v", exposed, want)
		}
	}
	j.NonFinite(math.NaN())
	j.Eval(3.3)
	fams := scrape(t, url)
	if n, _ := value(fams, TrainNonFiniteTotal, lab...); n != 1 {
		t.Errorf("%s = %v, want 1", TrainNonFiniteTotal, n)
	}
	if v, _ := value(fams, TrainLoss, lab...); !math.IsNaN(v) {
		t.Errorf("loss after a NaN step = %v, want NaN (what the NaN alert reads)", v)
	}
	if v, _ := value(fams, TrainValLoss, lab...); v != 3.3 {
		t.Errorf("val loss %v, want 3.3", v)
	}

	// A new generation with another rank replaces the series: one rank at a time.
	j2 := tm.Job("job-1", 0, 1, 8, fpt)
	j2.Observe(&Step{Next: 3, Loss: 2.5, Duration: time.Millisecond})
	fams = scrape(t, url)
	if _, ok := value(fams, TrainLoss, lab...); ok {
		t.Errorf("rank 1's loss still exported after the worker moved to rank 0")
	}
	if v, _ := value(fams, TrainLoss, LabelJob, "job-1", LabelRank, "0"); v != 2.5 {
		t.Errorf("rank 0 loss %v, want 2.5", v)
	}
	if n := len(fams[TrainPhaseSeconds].GetMetric()); n != 5 {
		t.Errorf("%d phase series, want the 5 phases of one rank", n)
	}
}

func TestCheckpointAndRecoverySeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	tm := NewTraining(reg, 0)
	url := serve(t, reg)
	j := tm.Job("job-2", 0, 2, 3, 1e6)
	lab := []string{LabelJob, "job-2", LabelRank, "0"}
	j.Saved(40*time.Millisecond, 3*time.Millisecond, 1000)
	j.Saved(60*time.Millisecond, 5*time.Millisecond, 1000)
	j.Loaded(20*time.Millisecond, 700, true)
	j.Loaded(10*time.Millisecond, 700, false)
	j.ChecksumFailure()
	j.SaveSkipped()
	j.SaveSkipped()
	j.SaveFailed()
	j.Recovered(1500*time.Millisecond, 37)
	fams := scrape(t, url)
	for _, c := range []struct {
		name string
		want float64
	}{
		{CkptSaveSeconds, 2}, {CkptStallSeconds, 2}, {CkptSaveBytesTotal, 2000},
		{CkptLoadSeconds, 2}, {CkptLoadBytesTotal, 1400}, {CkptReplicaTransfersTotal, 1},
		{CkptChecksumFailuresTotal, 1}, {RecoverySeconds, 1}, {RecoveryStepsReplayed, 1},
		{CkptSavesSkippedTotal, 2}, {CkptSaveFailuresTotal, 1},
	} {
		if got, ok := value(fams, c.name, lab...); !ok || got != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.name, got, ok, c.want)
		}
	}
	sum := func(name string) float64 {
		for _, m := range fams[name].GetMetric() {
			return m.GetHistogram().GetSampleSum()
		}
		return -1
	}
	if got := sum(CkptSaveSeconds); math.Abs(got-0.1) > 1e-9 {
		t.Errorf("save seconds sum %v, want 0.1", got)
	}
	if got := sum(CkptStallSeconds); math.Abs(got-0.008) > 1e-9 {
		t.Errorf("stall seconds sum %v, want 0.008", got)
	}
	if got := sum(RecoveryStepsReplayed); got != 37 {
		t.Errorf("steps replayed sum %v, want 37", got)
	}
	// Moving to another job forgets these series too.
	tm.Job("job-3", 0, 1, 4, 1e6)
	if _, ok := value(scrape(t, url), CkptSaveBytesTotal, lab...); ok {
		t.Error("job-2's checkpoint bytes still exported after the worker moved on")
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	j := NewTraining(prometheus.NewRegistry(), 1e9).Job("j", 0, 1, 1, 1e6)
	st := Step{Next: 1, Loss: 1, Tokens: 10, TokensPerSec: 10, Duration: time.Millisecond, ForwardBackward: time.Millisecond,
		Optimizer: time.Millisecond, TPComm: time.Millisecond, DPWindow: 2 * time.Millisecond, DPExposed: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { st.Next++; j.Observe(&st) }); n != 0 {
		t.Fatalf("Observe allocates %v times per step, want 0", n)
	}
}

func TestControlPlaneScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	snap := ControlSnapshot{
		RaftState: "Leader", Term: 3, CommitIndex: 40, AppliedIndex: 39, HasLeader: true, Peers: 3,
		WorkersByState: map[string]int{"alive": 2, "lost": 1}, JobsByState: map[string]int{"running": 1, "queued": 0},
		Jobs: []JobSnapshot{{ID: "job-1", Generation: 4, CommittedStep: 20, MaxSteps: 100, Ranks: 2,
			CheckpointAge: 90 * time.Second, CheckpointInterval: 50}},
		Heartbeats: []HeartbeatAge{{Worker: "w1", Age: 1500 * time.Millisecond}},
		Ranks: []RankSnapshot{{Job: "job-1", Rank: 1, Worker: "w1", Step: 33, Loss: 2.25, TokensPerSec: 9000,
			StepSeconds: 0.125, StragglerScore: 1.75}},
	}
	reg.MustRegister(NewControlPlane(func() ControlSnapshot { return snap }))
	url := serve(t, reg)
	for round := range 2 {
		fams := scrape(t, url)
		want := map[string]float64{RaftTerm: float64(snap.Term), RaftCommitIndex: 40, RaftAppliedIndex: 39, RaftPeers: 3, RaftHasLeader: 1}
		for name, v := range want {
			if got, ok := value(fams, name); !ok || got != v {
				t.Errorf("round %d: %s = %v (present %v), want %v", round, name, got, ok, v)
			}
		}
		if v, _ := value(fams, RaftState, LabelState, "Leader"); v != 1 {
			t.Errorf("raft state Leader = %v", v)
		}
		if v, _ := value(fams, RaftState, LabelState, "Follower"); v != 0 {
			t.Errorf("raft state Follower = %v", v)
		}
		if v, _ := value(fams, ClusterWorkers, LabelState, "lost"); v != 1 {
			t.Errorf("lost workers %v", v)
		}
		if v, _ := value(fams, JobGeneration, LabelJob, "job-1"); v != float64(snap.Jobs[0].Generation) {
			t.Errorf("generation %v, want %d", v, snap.Jobs[0].Generation)
		}
		if v, _ := value(fams, WorkerHeartbeatAge, LabelWorker, "w1"); v != snap.Heartbeats[0].Age.Seconds() {
			t.Errorf("heartbeat age %v", v)
		}
		if v, _ := value(fams, RankStep, LabelJob, "job-1", LabelRank, "1", LabelWorker, "w1"); v != float64(snap.Ranks[0].Step) {
			t.Errorf("rank step %v, want %d", v, snap.Ranks[0].Step)
		}
		rl := []string{LabelJob, "job-1", LabelRank, "1", LabelWorker, "w1"}
		for name, want := range map[string]float64{RankStepSeconds: snap.Ranks[0].StepSeconds, RankStragglerScore: snap.Ranks[0].StragglerScore} {
			if v, ok := value(fams, name, rl...); !ok || v != want {
				t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
			}
		}
		if v, _ := value(fams, JobCheckpointAge, LabelJob, "job-1"); v != snap.Jobs[0].CheckpointAge.Seconds() {
			t.Errorf("checkpoint age %v, want %v", v, snap.Jobs[0].CheckpointAge.Seconds())
		}
		if v, _ := value(fams, JobCheckpointInterval, LabelJob, "job-1"); v != 50 {
			t.Errorf("checkpoint interval %v, want 50", v)
		}
		// The snapshot moves between scrapes; so do the series.
		snap.Term++
		snap.Jobs[0].Generation++
		snap.Ranks[0].Step += 10
		snap.Heartbeats[0].Age += time.Second
		snap.Ranks[0].StragglerScore += 0.5
		snap.Jobs[0].CheckpointAge += time.Minute
	}
	snap.Jobs, snap.Ranks = nil, nil
	if _, ok := value(scrape(t, url), JobGeneration, LabelJob, "job-1"); ok {
		t.Error("a finished job's generation is still exported")
	}
}

// BenchmarkScrapeWorker is the cost of one scrape of a worker's /metrics
// (the Go, process and training collectors) through promhttp, in-process.
func BenchmarkScrapeWorker(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	j := NewTraining(reg, 1e11).Job("job-1", 0, 2, 1, 5e6)
	j.Observe(&Step{Next: 1, Loss: 3, Duration: 30 * time.Millisecond})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

// BenchmarkObserve is the per-step cost of the training series.
func BenchmarkObserve(b *testing.B) {
	j := NewTraining(prometheus.NewRegistry(), 1e11).Job("job-1", 0, 2, 1, 5e6)
	st := Step{Loss: 3, Tokens: 4096, TokensPerSec: 1e5, Duration: 30 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		st.Next++
		j.Observe(&st)
	}
}
