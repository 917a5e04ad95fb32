package train

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// A panic while running a generation (here a malformed assignment with no
// generation, dereferenced by runGeneration) becomes an error naming the
// job and the worker, which the worker reports as the job's failure; the
// worker's goroutine survives to take the next job.
func TestGenerationPanicBecomesJobFailure(t *testing.T) {
	w := &Worker{cfg: WorkerConfig{ID: "w7"}, log: slog.New(slog.DiscardHandler)}
	a := &pb.Assignment{JobId: "job-3", SpecJson: jobspec.Default().Marshal()}
	err := w.runContained(context.Background(), a)
	if err == nil {
		t.Fatal("runContained returned nil for a generation that panicked")
	}
	for _, want := range []string{"job job-3", "worker w7 panicked", "nil pointer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if isCollectiveFailure(err) {
		t.Errorf("a panic is classed as a collective failure (it would not fail the job): %v", err)
	}
}
