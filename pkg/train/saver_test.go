package train

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// reportRecorder is a Coordinator that only records checkpoint reports.
type reportRecorder struct {
	Coordinator
	mu      sync.Mutex
	reports []*pb.ReportCheckpointRequest
}

func (r *reportRecorder) ReportCheckpoint(_ context.Context, req *pb.ReportCheckpointRequest) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, req)
	return true, nil
}

func (r *reportRecorder) steps() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int64
	for _, q := range r.reports {
		out = append(out, q.Step)
	}
	return out
}

// A background save writes the state of the step it was taken at, although
// training goes on changing the live parameters and moments while it is
// written; a save due while one is in flight is skipped and counted; a save
// that cannot be written is counted and never reported.
func TestAsyncCheckpointHoldsTheStateOfItsStep(t *testing.T) {
	spec := tiny(t, "sort")
	tr := newTrainer(t, spec)
	store, err := ckpt.Open(filepath.Join(t.TempDir(), "ckpt.db"), ckpt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	coord := &reportRecorder{}
	w := &Worker{cfg: WorkerConfig{ID: "w1", Checkpoints: store, Coord: coord}, log: slog.New(slog.DiscardHandler)}
	reg := prometheus.NewRegistry()
	w.metrics = metrics.NewTraining(reg, 0)
	jm := w.metrics.Job("job-1", 0, 1, 1, 1)
	a := &pb.Assignment{JobId: "job-1", SpecJson: spec.Marshal(), Generation: &pb.Generation{Number: 1}}
	ctx := context.Background()

	losses(t, tr, 3)
	wantParams := slices.Clone(tr.Model.Params().Data)
	wantM, wantV := slices.Clone(tr.opt.M), slices.Clone(tr.opt.V)
	w.checkpoint(ctx, a, tr, false, jm)
	losses(t, tr, 2) // changes the live buffers while the save may still be writing
	w.saver.wait()
	sh, err := store.Get("job-1", 3, 0)
	if err != nil {
		t.Fatalf("the background save of step 3 is not in the store: %v", err)
	}
	if !slices.Equal(sh.Data, wantParams) || !slices.Equal(sh.Optim.M, wantM) || !slices.Equal(sh.Optim.V, wantV) {
		t.Fatal("the stored step-3 checkpoint differs from the state at step 3: the save read buffers training had changed")
	}
	if slices.Equal(sh.Data, tr.Model.Params().Data) {
		t.Fatal("the live parameters did not change after the save; the test proves nothing")
	}

	// A save still in flight: the next one due is skipped, not queued.
	if !w.saver.begin() {
		t.Fatal("saver busy after wait")
	}
	w.checkpoint(ctx, a, tr, false, jm)
	w.saver.end()
	if _, err := store.Get("job-1", 5, 0); err == nil {
		t.Fatal("a save due while another was in flight was written")
	}
	if got := counter(t, reg, metrics.CkptSavesSkippedTotal); got != 1 {
		t.Fatalf("saves skipped = %v, want 1", got)
	}

	// The final save is synchronous: durable when checkpoint returns.
	w.checkpoint(ctx, a, tr, true, jm)
	if _, err := store.Get("job-1", 5, 0); err != nil {
		t.Fatalf("final checkpoint not durable on return: %v", err)
	}

	// A store that cannot write (closed here; a full disk alike): the step
	// is counted as a failure and never reported.
	losses(t, tr, 1)
	store.Close()
	w.checkpoint(ctx, a, tr, false, jm)
	w.saver.wait()
	if got := counter(t, reg, metrics.CkptSaveFailuresTotal); got != 1 {
		t.Fatalf("save failures = %v, want 1", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(coord.steps()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the background reports
	}
	if got := coord.steps(); !slices.Equal(got, []int64{3, 5}) {
		t.Fatalf("reported steps %v, want [3 5]: a failed save must not be reported", got)
	}
}

// counter reads the one series of a counter from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no single %s series", name)
	return 0
}
