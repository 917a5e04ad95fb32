package localcluster

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// binDir builds the coordinator and worker once per test binary run.
func binDir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("ringmaster-localcluster-bin-%d", os.Getpid()))
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := Build(ctx, root, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startCluster(t *testing.T, workers int) *Cluster {
	t.Helper()
	return startClusterWith(t, Config{Workers: workers, WorkerTimeout: 2 * time.Second})
}

// startClusterWith starts cfg (Dir and BinDir filled in) and stops it with
// the test, logging the processes' log tails when the test failed.
func startClusterWith(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	cfg.Dir, cfg.BinDir = t.TempDir(), binDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, p := range append(c.Coordinators, c.Workers...) {
				if b, err := os.ReadFile(p.Log); err == nil {
					t.Logf("--- %s ---\n%s", p.Name, tail(string(b), 3000))
				}
			}
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitJob polls until the job ends, calling during(resp) on every poll.
func waitJob(t *testing.T, c *Cluster, id string, limit time.Duration, during func(*pb.GetJobResponse)) *pb.Job {
	t.Helper()
	cl := c.Client()
	defer cl.Close()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := cl.GetJob(ctx, id)
		cancel()
		if err == nil {
			if during != nil {
				during(r)
			}
			switch r.Job.State {
			case pb.JobState_JOB_STATE_COMPLETED, pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
				return r.Job
			}
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
	t.Fatalf("job %s did not end within %v", id, limit)
	return nil
}

// submit sends spec to the cluster and returns a client (closed with the
// test) and the job.
func submit(t *testing.T, c *Cluster, spec jobspec.Spec) (*coord.Client, *pb.Job) {
	t.Helper()
	cl := c.Client()
	t.Cleanup(func() { cl.Close() })
	job, err := cl.SubmitJob(context.Background(), spec.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return cl, job
}

// proc returns the cluster process named name (a worker or coordinator).
func (c *Cluster) proc(t *testing.T, name string) *Proc {
	t.Helper()
	for _, p := range append(append([]*Proc{}, c.Coordinators...), c.Workers...) {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no process %q in the cluster", name)
	return nil
}

func smallSpec(t *testing.T, sets ...string) jobspec.Spec {
	t.Helper()
	s, err := jobspec.Override(jobspec.Default(), append([]string{
		"model.n_layer=1", "model.n_embd=32", "train.max_iters=300", "checkpoint.interval=50",
		"train.eval_interval=0", "train.eval_iters=2", "train.held_out=50",
	}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reference trains spec in this process and returns its final parameters.
func reference(t *testing.T, spec jobspec.Spec) []float32 {
	t.Helper()
	tr, err := train.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	for tr.Iter() < spec.Train.MaxIters {
		if _, err := tr.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return tr.Model.Params().Data
}

func compareModel(t *testing.T, dir string, want []float32) {
	t.Helper()
	saved, err := train.Load(dir, model.Compute{})
	if err != nil {
		t.Fatal(err)
	}
	got := saved.Model.Params().Data
	if len(got) != len(want) {
		t.Fatalf("cluster model has %d parameters, reference %d", len(got), len(want))
	}
	var worst float64
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/math.Max(1, math.Abs(float64(want[i]))))
	}
	if worst > 1e-4 {
		t.Errorf("cluster-trained parameters differ from the single-process run by %.2g relative (> 1e-4)", worst)
	}
}

// Real processes: a DP=2 × TP=2 job over four workers computes what one
// process computes.
func TestClusterTrainsLikeOneProcess(t *testing.T) {
	c := startCluster(t, 4)
	spec := smallSpec(t, "parallel.tp=2", "parallel.min_workers=4")
	want := reference(t, spec)
	_, job := submit(t, c, spec)
	var layout string
	end := waitJob(t, c, job.Id, 3*time.Minute, func(r *pb.GetJobResponse) {
		if g := r.Generation; g != nil {
			layout = fmt.Sprintf("dp %d × tp %d", g.DpSize, g.TpSize)
		}
	})
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	if layout != "dp 2 × tp 2" {
		t.Errorf("job ran as %q, want dp 2 × tp 2", layout)
	}
	compareModel(t, c.ModelDir(job.Id), want)
}

// Real processes: SIGKILL a worker mid-job. The coordinator commits a new
// generation (a spare worker takes the rank), the replicas resume from the
// last committed checkpoint, and the result still equals the single-process
// run: resuming replays the same global batches.
func TestClusterSurvivesAWorkerKill(t *testing.T) {
	c := startCluster(t, 3)
	// A modest learning rate keeps the loss off zero: once a model has
	// converged, rounding noise dominates its gradients and AdamW amplifies
	// it, and no two summation orders agree any more.
	spec := smallSpec(t, "train.max_iters=800", "train.learning_rate=3e-4", "train.min_lr=3e-5",
		"parallel.max_workers=2", "parallel.min_workers=2")
	want := reference(t, spec)
	_, job := submit(t, c, spec)
	var killed, survivor string
	var generations []uint64
	var last *pb.Generation
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		g := r.Generation
		if g == nil {
			return
		}
		last = g
		if len(generations) == 0 || generations[len(generations)-1] != g.Number {
			generations = append(generations, g.Number)
		}
		if killed == "" && r.Job.CommittedStep >= 100 {
			killed, survivor = g.Ranks[1].WorkerId, g.Ranks[0].WorkerId
			c.proc(t, killed).Signal(syscall.SIGKILL)
		}
	})
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	if killed == "" {
		t.Fatal("the job finished before a worker could be killed; make it longer")
	}
	if len(generations) < 2 {
		t.Errorf("generations seen %v: no new generation after killing %s", generations, killed)
	}
	for _, rank := range last.Ranks {
		if rank.WorkerId == killed {
			t.Errorf("killed worker %s is still in the last generation", killed)
		}
	}
	if !strings.Contains(last.Reason, "lost") {
		t.Errorf("last generation's reason %q does not say a worker was lost", last.Reason)
	}
	compareModel(t, c.ModelDir(job.Id), want)

	// The survivor measured the recovery (its ring broke when the peer
	// died; the next generation stepped again) and its checkpoints.
	fams, err := scrapeMetrics(c.workerHTTP(t, survivor))
	if err != nil {
		t.Fatal(err)
	}
	lab := []string{metrics.LabelJob, job.Id}
	for _, name := range []string{metrics.RecoverySeconds, metrics.RecoveryStepsReplayed, metrics.CkptLoadSeconds, metrics.CkptSaveSeconds} {
		if n, _ := seriesValue(fams, name, lab...); n < 1 {
			t.Errorf("survivor %s: %s has %v observations, want ≥ 1", survivor, name, n)
		}
	}
	if b, _ := seriesValue(fams, metrics.CkptLoadBytesTotal, lab...); b <= 0 {
		t.Errorf("survivor %s: %s = %v, want the resumed state's bytes", survivor, metrics.CkptLoadBytesTotal, b)
	}
	if s, _ := seriesValue(fams, metrics.TrainStep, lab...); s != float64(spec.Train.MaxIters) {
		t.Errorf("survivor %s: %s = %v, want %d", survivor, metrics.TrainStep, s, spec.Train.MaxIters)
	}
	// Its peak memory is at least what it holds now.
	peak, _ := seriesValue(fams, metrics.ProcessPeakRSS)
	now, found := seriesValue(fams, "process_resident_memory_bytes")
	if !found || peak < now || peak <= 0 {
		t.Errorf("survivor %s: %s = %v with process_resident_memory_bytes %v (found %v), want peak ≥ current > 0", survivor, metrics.ProcessPeakRSS, peak, now, found)
	}
}

// Real processes: with tensor parallelism (each worker holds its own shard,
// no replica to copy from), SIGKILL one worker and restart it from its data
// dir. The job waits below min_workers, then the restarted worker loads its
// shard from its bbolt checkpoint store and the run ends where a single
// process ends.
func TestClusterResumesFromDiskAfterRestart(t *testing.T) {
	c := startCluster(t, 2)
	spec := smallSpec(t, "train.max_iters=800", "train.learning_rate=3e-4", "train.min_lr=3e-5",
		"parallel.tp=2", "parallel.min_workers=2")
	want := reference(t, spec)
	_, job := submit(t, c, spec)
	var restarted bool
	var resumeSteps []int64
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		if g := r.Generation; g != nil && (len(resumeSteps) == 0 || resumeSteps[len(resumeSteps)-1] != g.ResumeStep) {
			resumeSteps = append(resumeSteps, g.ResumeStep)
		}
		if !restarted && r.Job.CommittedStep >= 100 {
			restarted = true
			w := c.Workers[1]
			w.Signal(syscall.SIGKILL)
			w.Wait()
			if err := c.Restart(w); err != nil {
				t.Error(err)
			}
		}
	})
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	if !restarted {
		t.Fatal("the job finished before the worker could be restarted")
	}
	if len(resumeSteps) < 2 || resumeSteps[len(resumeSteps)-1] < 100 {
		t.Errorf("resume steps of the generations seen: %v; want a later generation resuming from a checkpoint ≥ 100", resumeSteps)
	}
	compareModel(t, c.ModelDir(job.Id), want)
}

// Real processes: SIGTERM is a clean leave. The worker tells the leader it
// is going, so the job is re-planned at once (not after the heartbeat
// timeout), and a spare worker takes its place.
func TestClusterWorkerLeavesOnSIGTERM(t *testing.T) {
	c := startCluster(t, 3)
	spec := smallSpec(t, "train.max_iters=800", "train.learning_rate=3e-4", "train.min_lr=3e-5",
		"parallel.max_workers=2", "parallel.min_workers=2")
	cl, job := submit(t, c, spec)
	var leaver string
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		if leaver == "" && r.Generation != nil && r.Job.CommittedStep >= 100 {
			leaver = r.Generation.Ranks[1].WorkerId
			c.proc(t, leaver).Signal(syscall.SIGTERM)
		}
	})
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	ws, err := cl.ListWorkers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.Id == leaver && (w.State != pb.WorkerState_WORKER_STATE_LOST || w.Reason != "left: shutting down") {
			t.Errorf("worker %s after SIGTERM: %v %q, want lost with reason \"left: shutting down\"", w.Id, w.State, w.Reason)
		}
	}
	if c.proc(t, leaver).Running() {
		t.Errorf("worker %s still running after SIGTERM", leaver)
	}
}

// Real processes: SIGKILL the coordinator leader mid-job. The coordinator
// is never on the data path: the workers keep stepping in the same
// generation while Raft elects a new leader, reconnect their sessions, and
// the job completes with the single-process result.
func TestClusterTrainsThroughLeaderFailover(t *testing.T) {
	c := startCluster(t, 2)
	spec := smallSpec(t, "train.max_iters=800", "train.learning_rate=3e-4", "train.min_lr=3e-5",
		"parallel.min_workers=2")
	want := reference(t, spec)
	cl, job := submit(t, c, spec)
	var killed string
	generations := map[uint64]bool{}
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		if r.Generation != nil {
			generations[r.Generation.Number] = true
		}
		if killed != "" || r.Job.CommittedStep < 100 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cl.Status(ctx)
		cancel()
		if err != nil || st.LeaderId == "" {
			return
		}
		killed = st.LeaderId
		c.proc(t, killed).Signal(syscall.SIGKILL)
	})
	if killed == "" {
		t.Fatal("the job finished before the leader could be killed")
	}
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	if len(generations) != 1 {
		t.Errorf("generations seen %v: a leader change must not restart the workers", generations)
	}
	compareModel(t, c.ModelDir(job.Id), want)
}

// jobMembers is the sorted worker ids of r's generation, comma-separated.
func jobMembers(r *pb.GetJobResponse) string {
	var ids []string
	for _, rk := range r.GetGeneration().GetRanks() {
		ids = append(ids, rk.WorkerId)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// pollJob reads the job every 100 ms until cond holds, and fails the test
// when the job ends or limit passes first.
func pollJob(t *testing.T, cl *coord.Client, job, what string, limit time.Duration, cond func(*pb.GetJobResponse) bool) *pb.GetJobResponse {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r, err := cl.GetJob(rctx, job)
		cancel()
		if err == nil && cond(r) {
			return r
		}
		if err == nil && r.Job.State != pb.JobState_JOB_STATE_RUNNING && r.Job.State != pb.JobState_JOB_STATE_WAITING &&
			r.Job.State != pb.JobState_JOB_STATE_QUEUED {
			t.Fatalf("waiting for %s: job %v: %s", what, r.Job.State, r.Job.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %v, %v)", limit, what, r.GetJob(), err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}
