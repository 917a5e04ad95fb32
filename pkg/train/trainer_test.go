package train

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

// tiny returns a small version of a preset, fast enough for unit tests.
func tiny(t *testing.T, preset string, sets ...string) jobspec.Spec {
	t.Helper()
	s, err := jobspec.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"model.n_layer=1", "model.n_embd=16", "model.n_head=2", "train.max_iters=20",
		"train.eval_iters=2", "train.warmup_iters=2", "train.lr_decay_iters=20", "train.eval_interval=0", "train.held_out=50"}
	if s.Model.Arch == model.ArchEncDec {
		base = append(base, "model.n_hidden=32", "model.n_dec_layer=1", "train.batch_size=8")
	}
	s, err = jobspec.Override(s, append(base, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTrainer(t *testing.T, s jobspec.Spec, opts ...Option) *Trainer {
	t.Helper()
	tr, err := New(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func losses(t *testing.T, tr *Trainer, n int) []float64 {
	t.Helper()
	var out []float64
	for range n {
		st, err := tr.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st.Loss)
	}
	return out
}

func TestTrainingIsDeterministic(t *testing.T) {
	for _, preset := range []string{"sort", "seq2seq-reverse"} {
		s := tiny(t, preset)
		a := losses(t, newTrainer(t, s), 5)
		b := losses(t, newTrainer(t, s), 5)
		for i := range a {
			if a[i] != b[i] {
				t.Errorf("%s step %d: loss %v then %v with the same spec", preset, i, a[i], b[i])
			}
		}
	}
}

// Gradient accumulation over micro-batches must equal one big batch: the
// global batch is the same rows, and the loss is normalised by its target count.
func TestGradAccumulationEqualsBigBatch(t *testing.T) {
	for _, preset := range []string{"sort", "seq2seq-reverse"} {
		big := tiny(t, preset, "train.batch_size=8", "train.grad_accum_steps=1")
		acc := tiny(t, preset, "train.batch_size=2", "train.grad_accum_steps=4")
		a := losses(t, newTrainer(t, big), 6)
		b := losses(t, newTrainer(t, acc), 6)
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-5*math.Max(1, math.Abs(a[i])) {
				t.Errorf("%s step %d: one batch of 8 gives loss %.7f, 4 micro-batches of 2 give %.7f", preset, i, a[i], b[i])
			}
		}
	}
}

func TestNonFiniteLossIsRejectedAndNothingChanges(t *testing.T) {
	tr := newTrainer(t, tiny(t, "sort"))
	losses(t, tr, 2)
	p := tr.Model.Params()
	p.Data[0] = float32(math.NaN()) // poison one embedding entry
	before := append([]float32(nil), p.Data...)
	_, err := tr.Step(context.Background())
	if !errors.Is(err, ErrNonFiniteLoss) {
		t.Fatalf("Step with a NaN parameter: err = %v, want ErrNonFiniteLoss", err)
	}
	if !strings.Contains(err.Error(), "iter 2") || !strings.Contains(err.Error(), "learning_rate") {
		t.Errorf("error should name the iteration and the fix: %v", err)
	}
	if tr.Iter() != 2 {
		t.Errorf("iteration advanced to %d after a rejected step", tr.Iter())
	}
	for i := 1; i < len(before); i++ {
		if p.Data[i] != before[i] {
			t.Fatalf("parameter %d changed from %v to %v by a rejected step", i, before[i], p.Data[i])
		}
	}
	for i, g := range p.Grad {
		if g != 0 {
			t.Fatalf("gradient %d = %v left behind by a rejected step", i, g)
		}
	}
}

func TestStepAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	tr := newTrainer(t, tiny(t, "sort"))
	losses(t, tr, 2)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := tr.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a training step allocates %.0f times; activations must be reused", allocs)
	}
}

func TestRunLearnsSortAndSavesALoadableModel(t *testing.T) {
	s := tiny(t, "sort", "train.max_iters=150", "model.n_embd=32", "train.batch_size=32", "train.learning_rate=3e-3", "train.min_lr=3e-4")
	dir := t.TempDir()
	res, err := Run(context.Background(), s, Options{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	last := res.Evals[len(res.Evals)-1]
	first := losses(t, newTrainer(t, s), 1)[0]
	if !(last.ValLoss < first/4) {
		t.Errorf("val loss %.4f after 150 steps is not well below the initial loss %.4f", last.ValLoss, first)
	}
	if last.HeldOut == nil || last.HeldOut.N == 0 {
		t.Fatalf("sort run scored no held-out problems: %+v", last)
	}
	// The run reports the process's peak memory: at least the model's
	// weights, gradients and AdamW moments.
	if min := int64(16 * res.Params); res.PeakRSS < min {
		t.Errorf("peak RSS %d bytes, below the %d of parameters, gradients and moments", res.PeakRSS, min)
	}
	saved, err := Load(dir, model.Compute{})
	if err != nil {
		t.Fatal(err)
	}
	if saved.Iter != 150 || saved.Spec.Model.VocabSize != 3 {
		t.Errorf("loaded iter %d, vocab %d; want 150, 3", saved.Iter, saved.Spec.Model.VocabSize)
	}
	// The loaded model scores exactly as the trained one did.
	gen, err := Decoder(context.Background(), saved.Model)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := data.Open(saved.Spec)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ds.HeldOut().Score(gen, 64)
	if err != nil {
		t.Fatal(err)
	}
	if sc != *last.HeldOut {
		t.Errorf("reloaded model scores %+v, trained model scored %+v", sc, *last.HeldOut)
	}
}

func TestLoadRejectsWrongShapes(t *testing.T) {
	s := tiny(t, "sort", "train.max_iters=1")
	dir := t.TempDir()
	if _, err := Run(context.Background(), s, Options{OutDir: dir}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Tensors {
		if f.Tensors[i].Name == "transformer.wpe.weight" {
			f.Tensors[i].Shape = []int{len(f.Tensors[i].Data)} // flatten: wrong shape
		}
	}
	if err := safetensors.WriteFile(path, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir, model.Compute{})
	if err == nil || !strings.Contains(err.Error(), "transformer.wpe.weight") {
		t.Fatalf("Load of a wrong-shaped tensor: err = %v, want one naming transformer.wpe.weight", err)
	}
}

func TestBadDataFailsBeforeTraining(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.txt")
	if err := os.WriteFile(small, []byte("to be or not to be, that is the question\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sets []string
		want string
	}{
		{"missing file", []string{"data.path=" + filepath.Join(dir, "nope.txt")}, "data.path"},
		{"block larger than data", []string{"data.path=" + small}, "model.block_size"},
		{"checksum mismatch", []string{"data.path=" + small, "model.block_size=2",
			"data.sha256=" + strings.Repeat("0", 64)}, "data.sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tiny(t, "babygpt", tc.sets...)
			_, err := Run(context.Background(), s, Options{OutDir: filepath.Join(dir, "out")})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(statErr) {
				t.Errorf("a failed start wrote output anyway")
			}
		})
	}
}

func TestEvaluateIsRepeatable(t *testing.T) {
	tr := newTrainer(t, tiny(t, "bert-mlm", "data.path="+shakespeare(t)))
	a, err := tr.Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("two evaluations of the same weights differ: %+v vs %+v", a, b)
	}
	if a.ValAccuracy < 0 || a.ValAccuracy > 1 || a.ValLoss <= 0 {
		t.Errorf("implausible eval %+v", a)
	}
}

// shakespeare returns the shared corpus path, skipping when it is absent.
func shakespeare(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../../shared/data/tinyshakespeare.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("corpus not available: %v", err)
	}
	return p
}

// train.recompute reaches every model of the trainer (its lanes too) and
// changes no bit: the same losses and final parameters as keeping every
// activation, with dropout on.
func TestRecomputeTrainsTheSameBits(t *testing.T) {
	run := func(recompute string, opts ...Option) ([]float64, []float32) {
		s := tiny(t, "sort", "model.n_layer=3", "model.n_embd=32", "model.dropout=0.1", "train.batch_size=6", "train.recompute="+recompute)
		tr := newTrainer(t, s, opts...)
		defer tr.Close()
		want, _ := model.ParseRecompute(recompute)
		models := []model.Model{tr.Model}
		for _, l := range tr.lanes {
			models = append(models, l.model)
		}
		for i, m := range models {
			if got := m.(*model.GPT).Recompute(); got != want {
				t.Fatalf("train.recompute=%s: lane %d's model recomputes %s", recompute, i, got)
			}
		}
		return losses(t, tr, 12), slices.Clone(tr.Model.Params().Data)
	}
	wantL, wantP := run("none")
	for _, r := range []string{"mlp", "block"} {
		for _, lanes := range []int{1, 2} {
			gotL, gotP := run(r, WithLanes(lanes))
			if lanes == 1 && (!slices.Equal(gotL, wantL) || !slices.Equal(gotP, wantP)) {
				t.Errorf("recompute %s: losses %v, keeping everything %v (or the parameters differ)", r, gotL, wantL)
			}
			if lanes == 2 {
				wL, wP := run("none", WithLanes(2))
				if !slices.Equal(gotL, wL) || !slices.Equal(gotP, wP) {
					t.Errorf("recompute %s, 2 lanes: differs from 2 lanes keeping everything", r)
				}
			}
		}
	}
}
