package train

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitFromStartsFromTheSavedWeights: train.init_from gives a new job
// the weights of a saved model (its val loss, not a random model's), then
// trains on from there; a file for another shape is refused by field.
func TestInitFromStartsFromTheSavedWeights(t *testing.T) {
	s := tiny(t, "sort", "train.max_iters=60", "train.batch_size=32", "train.learning_rate=3e-3")
	dir := t.TempDir()
	res, err := Run(context.Background(), s, Options{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	trained := res.Evals[len(res.Evals)-1].ValLoss
	fresh, err := newTrainer(t, s).ValLoss(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ft := s
	ft.Train.InitFrom = filepath.Join(dir, WeightsFile)
	tr := newTrainer(t, ft)
	got, err := tr.ValLoss(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got != trained || got >= fresh {
		t.Fatalf("init_from val loss %.6f; the saved model's is %.6f, a fresh model's %.6f", got, trained, fresh)
	}
	if l := losses(t, tr, 5); l[4] >= fresh {
		t.Fatalf("fine-tuning losses %v are not those of a trained model (fresh %.4f)", l, fresh)
	}
	bad := ft
	bad.Model.NEmbd = 32
	if _, err := New(bad); err == nil || !strings.Contains(err.Error(), "train.init_from") || !strings.Contains(err.Error(), "want") {
		t.Fatalf("init_from a file of another shape: err = %v", err)
	}
}
