package train

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/tokenizer"
)

// tokenFiles trains a small BPE tokenizer with specials on the test text
// and writes its token files, returning their directory.
func tokenFiles(t *testing.T, specials ...string) string {
	t.Helper()
	text, err := os.ReadFile(testText(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Train(context.Background(), []string{string(text)}, tokenizer.TrainOptions{VocabSize: 256 + 64 + len(specials), Specials: specials})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(src, text, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tokens")
	if _, err := data.Prepare(context.Background(), tok, []string{src}, out, data.PrepareOptions{ValFraction: 0.1}); err != nil {
		t.Fatal(err)
	}
	return out
}

// BERT learns from token files: its sentence-pair rows (token types 0 and
// 1) go through the model and the masked-LM loss falls well below its
// start.
func TestBERTTrainsOnTokenFiles(t *testing.T) {
	out := tokenFiles(t, data.PadToken, data.CLSToken, data.SEPToken, data.MaskToken)
	s := tiny(t, "bert-mlm", "data.task=tokens", "data.path="+out, "model.n_embd=32", "model.n_head=2",
		"model.block_size=24", "train.batch_size=16", "train.max_iters=150", "train.learning_rate=3e-3", "train.min_lr=3e-4", "train.lr_decay_iters=150")
	tr := newTrainer(t, s)
	defer tr.Close()
	var b = tr.batch
	if err := tr.Data.Fill(&b, data.Train, 0, 2, 0, 2); err != nil {
		t.Fatal(err)
	}
	ones := 0
	for _, ty := range b.TokenTypes {
		ones += int(ty)
	}
	if ones == 0 {
		t.Fatal("no token of type 1 in the rows: not sentence pairs")
	}
	l := losses(t, tr, 150)
	first, last := l[0], (l[145]+l[146]+l[147]+l[148]+l[149])/5
	if !(last < first*0.7) {
		t.Fatalf("masked-LM loss %.3f → %.3f over 150 steps: BERT does not learn from token files", first, last)
	}
	t.Logf("masked-LM loss %.3f → %.3f", first, last)
}

// The encoder–decoder learns from token files: continuing a span of the
// stream, its loss falls well below where it starts.
func TestEncDecTrainsOnTokenFiles(t *testing.T) {
	out := tokenFiles(t, data.EndOfText)
	s := tiny(t, "seq2seq-reverse", "data.task=tokens", "data.path="+out, "model.n_embd=32", "model.n_head=2",
		"model.block_size=16", "train.batch_size=16", "train.max_iters=150", "train.learning_rate=3e-3", "train.min_lr=3e-4", "train.lr_decay_iters=150")
	tr := newTrainer(t, s)
	defer tr.Close()
	l := losses(t, tr, 150)
	first, last := l[0], (l[145]+l[146]+l[147]+l[148]+l[149])/5
	if !(last < first*0.7) {
		t.Fatalf("loss %.3f → %.3f over 150 steps: the encoder–decoder does not learn from token files", first, last)
	}
	ev, err := tr.Evaluate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.3f → %.3f, val loss %.3f", first, last, ev.ValLoss)
}
