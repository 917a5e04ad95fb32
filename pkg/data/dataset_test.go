package data

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// writeText writes a deterministic pseudo-English text of about n bytes.
func writeText(t testing.TB, n int) string {
	t.Helper()
	words := []string{"the", "king", "shall", "speak", "ROMEO:", "and", "we", "proceed", "hear", "me", "Citizen", "no,", "yes!", "well?"}
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(9) == 0 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	path := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func preset(t testing.TB, name string) jobspec.Spec {
	t.Helper()
	s, err := jobspec.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t testing.TB, s jobspec.Spec) *Dataset {
	t.Helper()
	d, err := Open(s)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

// datasets returns one opened dataset of every kind, keyed by a short name.
func datasets(t testing.TB) map[string]*Dataset {
	t.Helper()
	path := writeText(t, 20000)
	gpt := preset(t, "babygpt")
	gpt.Data.Path = path
	bert := preset(t, "bert-mlm")
	bert.Data.Path = path
	return map[string]*Dataset{
		"gpt-text":  open(t, gpt),
		"bert-text": open(t, bert),
		"sort":      open(t, preset(t, "sort")),
		"add":       open(t, preset(t, "add")),
		"reverse":   open(t, preset(t, "seq2seq-reverse")),
	}
}

func fill(t testing.TB, d *Dataset, split Split, step int64, rows, lo, hi int) *model.Batch {
	t.Helper()
	var b model.Batch
	if err := d.Fill(&b, split, step, rows, lo, hi); err != nil {
		t.Fatalf("Fill: %v", err)
	}
	return &b
}

// appendRows concatenates the rows of b2 after those of b1 (same T and S).
func appendRows(b1, b2 *model.Batch) *model.Batch {
	cat := func(x, y []int32) []int32 {
		if x == nil && y == nil {
			return nil
		}
		return append(slices.Clone(x), y...)
	}
	cat8 := func(x, y []uint8) []uint8 {
		if x == nil && y == nil {
			return nil
		}
		return append(slices.Clone(x), y...)
	}
	return &model.Batch{
		B: b1.B + b2.B, T: b1.T, S: b1.S,
		Tokens: cat(b1.Tokens, b2.Tokens), Targets: cat(b1.Targets, b2.Targets),
		KeyValid: cat8(b1.KeyValid, b2.KeyValid), TokenTypes: cat(b1.TokenTypes, b2.TokenTypes),
		Src: cat(b1.Src, b2.Src), SrcValid: cat8(b1.SrcValid, b2.SrcValid),
	}
}

// sameBatch reports the first difference between two batches, or "".
func sameBatch(a, b *model.Batch) string {
	switch {
	case a.B != b.B || a.T != b.T || a.S != b.S:
		return fmt.Sprintf("dims (B,T,S) (%d,%d,%d) vs (%d,%d,%d)", a.B, a.T, a.S, b.B, b.T, b.S)
	case !slices.Equal(a.Tokens, b.Tokens):
		return "Tokens"
	case !slices.Equal(a.Targets, b.Targets):
		return "Targets"
	case !slices.Equal(a.KeyValid, b.KeyValid) || (a.KeyValid == nil) != (b.KeyValid == nil):
		return "KeyValid"
	case !slices.Equal(a.TokenTypes, b.TokenTypes) || (a.TokenTypes == nil) != (b.TokenTypes == nil):
		return "TokenTypes"
	case !slices.Equal(a.Src, b.Src):
		return "Src"
	case !slices.Equal(a.SrcValid, b.SrcValid):
		return "SrcValid"
	}
	return ""
}

func countTargets(b *model.Batch) int {
	n := 0
	for _, y := range b.Targets {
		if y != model.IgnoreIndex {
			n++
		}
	}
	return n
}

func TestDeterminismAndPartition(t *testing.T) {
	const rows = 13
	for name, d := range datasets(t) {
		t.Run(name, func(t *testing.T) {
			for _, split := range []Split{Train, Val} {
				full := fill(t, d, split, 7, rows, 0, rows)
				if diff := sameBatch(full, fill(t, d, split, 7, rows, 0, rows)); diff != "" {
					t.Fatalf("%v: same (seed, step) gave different batches: %s", split, diff)
				}
				if full.B != rows || len(full.Tokens) != rows*full.T || len(full.Targets) != rows*full.T {
					t.Fatalf("%v: B=%d T=%d len(Tokens)=%d", split, full.B, full.T, len(full.Tokens))
				}
				for _, k := range []int{0, 1, 4, 6, rows - 1, rows} {
					part := appendRows(fill(t, d, split, 7, rows, 0, k), fill(t, d, split, 7, rows, k, rows))
					if diff := sameBatch(full, part); diff != "" {
						t.Fatalf("%v: rows [0,%d) ++ [%d,%d) differ from [0,%d) in %s", split, k, k, rows, rows, diff)
					}
				}
				// three-way split, as three DP ranks would take it
				three := appendRows(appendRows(fill(t, d, split, 7, rows, 0, 5), fill(t, d, split, 7, rows, 5, 9)), fill(t, d, split, 7, rows, 9, rows))
				if diff := sameBatch(full, three); diff != "" {
					t.Fatalf("%v: three-way partition differs in %s", split, diff)
				}
				if got, want := d.CountTargets(split, 7, rows), countTargets(full); got != want {
					t.Errorf("%v: CountTargets = %d, batch has %d non-ignored targets", split, got, want)
				}
				if sameBatch(full, fill(t, d, split, 8, rows, 0, rows)) == "" {
					t.Errorf("%v: steps 7 and 8 gave the same batch", split)
				}
				var ev model.Batch
				if err := d.FillEval(&ev, split, 7, rows, 0, rows); err != nil {
					t.Fatal(err)
				}
				if sameBatch(full, &ev) == "" {
					t.Errorf("%v: eval batch 7 equals training batch 7", split)
				}
				if got, want := d.CountEvalTargets(split, 7, rows), countTargets(&ev); got != want {
					t.Errorf("%v: CountEvalTargets = %d, eval batch has %d", split, got, want)
				}
				if full.LossDenom != 0 {
					t.Errorf("LossDenom = %g, want 0", full.LossDenom)
				}
			}
			if sameBatch(fill(t, d, Train, 3, rows, 0, rows), fill(t, d, Val, 3, rows, 0, rows)) == "" {
				t.Error("train and val batches at step 3 are equal")
			}
		})
	}
}

func TestSeedChangesBatches(t *testing.T) {
	s := preset(t, "sort")
	a := open(t, s)
	s.Train.Seed++
	b := open(t, s)
	if sameBatch(fill(t, a, Train, 0, 16, 0, 16), fill(t, b, Train, 0, 16, 0, 16)) == "" {
		t.Error("different seeds gave the same batch")
	}
	// eval batches depend on eval_seed only, not on the training seed
	var ea, eb model.Batch
	if err := a.FillEval(&ea, Val, 0, 16, 0, 16); err != nil {
		t.Fatal(err)
	}
	if err := b.FillEval(&eb, Val, 0, 16, 0, 16); err != nil {
		t.Fatal(err)
	}
	if diff := sameBatch(&ea, &eb); diff != "" {
		t.Errorf("eval batches depend on train.seed: %s", diff)
	}
}

func TestFillDoesNotAllocate(t *testing.T) {
	for name, d := range datasets(t) {
		t.Run(name, func(t *testing.T) {
			var b model.Batch
			step := int64(0)
			allocs := testing.AllocsPerRun(20, func() {
				step++
				if err := d.Fill(&b, Train, step, 32, 8, 24); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Fill allocates %v times per call after warm-up", allocs)
			}
		})
	}
}

func TestFillRejectsBadRange(t *testing.T) {
	d := open(t, preset(t, "sort"))
	var b model.Batch
	for _, r := range [][3]int{{0, 0, 0}, {4, -1, 2}, {4, 3, 2}, {4, 0, 5}} {
		if err := d.Fill(&b, Train, 0, r[0], r[1], r[2]); err == nil {
			t.Errorf("Fill(rows=%d, [%d,%d)) succeeded", r[0], r[1], r[2])
		}
	}
	if err := d.Fill(&b, Split(5), 0, 4, 0, 4); err == nil {
		t.Error("Fill with an unknown split succeeded")
	}
	if err := d.Fill(&b, Train, 0, 4, 2, 2); err != nil || b.B != 0 {
		t.Errorf("empty range: err %v, B %d", err, b.B)
	}
}

func TestOpenErrors(t *testing.T) {
	path := writeText(t, 2000)
	cases := []struct {
		name string
		edit func(*jobspec.Spec)
		want []string
	}{
		{"sha mismatch", func(s *jobspec.Spec) {
			s.Data.Path = path
			s.Data.SHA256 = strings.Repeat("ab", 32)
		}, []string{"data.sha256", strings.Repeat("ab", 32), "has sha256 "}},
		{"unreadable", func(s *jobspec.Spec) { s.Data.Path = filepath.Join(t.TempDir(), "nope.txt") }, []string{"data.path", "nope.txt"}},
		{"block too large", func(s *jobspec.Spec) {
			s.Data.Path = path
			s.Model.BlockSize = 500
		}, []string{"model.block_size", "max allowed is"}},
		{"task arch", func(s *jobspec.Spec) { s.Data = jobspec.DataSpec{Task: jobspec.TaskReverse} }, []string{"data.task", "encdec"}},
		{"unknown task", func(s *jobspec.Spec) { s.Data = jobspec.DataSpec{Task: "poems"} }, []string{"data.task", "poems"}},
		{"sort block size", func(s *jobspec.Spec) {
			s.Data = jobspec.DataSpec{Task: jobspec.TaskSort, Length: 8, Digits: 3}
		}, []string{"model.block_size", "≥ 15"}},
		{"add block size", func(s *jobspec.Spec) {
			s.Data = jobspec.DataSpec{Task: jobspec.TaskAdd, Digits: 5}
		}, []string{"model.block_size", "≥ 15"}},
		{"vocab size", func(s *jobspec.Spec) {
			s.Data.Path = path
			s.Model.VocabSize = 3
		}, []string{"model.vocab_size", "smaller than the tokenizer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := preset(t, "babygpt")
			s.Model.BlockSize = 12
			c.edit(&s)
			_, err := Open(s)
			if err == nil {
				t.Fatalf("Open succeeded, want an error containing %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSHA256Accepted(t *testing.T) {
	path := writeText(t, 2000)
	_, sum, err := ReadText(path, "")
	if err != nil {
		t.Fatal(err)
	}
	s := preset(t, "babygpt")
	s.Model.BlockSize = 12
	s.Data.Path, s.Data.SHA256 = path, sum
	d := open(t, s)
	if got := d.Info().SHA256; got != sum {
		t.Errorf("Info().SHA256 = %s, want %s", got, sum)
	}
}

func TestSortTinySpace(t *testing.T) {
	// 2^3 = 8 problems: Open either refuses (one side of the split empty) or
	// both splits can be sampled without hanging
	s := preset(t, "sort")
	s.Data.Length, s.Data.Digits = 3, 2
	if d, err := Open(s); err == nil {
		fill(t, d, Train, 0, 8, 0, 8)
		fill(t, d, Val, 0, 8, 0, 8)
	}
}

func TestConcurrentFill(t *testing.T) {
	d := open(t, preset(t, "seq2seq-reverse"))
	const rows = 32
	want := fill(t, d, Train, 11, rows, 0, rows)
	parts := make([]*model.Batch, 4)
	errs := make([]error, 4)
	done := make(chan int)
	for i := range parts {
		go func() {
			parts[i] = new(model.Batch)
			errs[i] = d.Fill(parts[i], Train, 11, rows, i*rows/4, (i+1)*rows/4)
			done <- i
		}()
	}
	for range parts {
		<-done
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := parts[0]
	for _, p := range parts[1:] {
		got = appendRows(got, p)
	}
	if diff := sameBatch(want, got); diff != "" {
		t.Errorf("concurrent rank fills differ from the serial batch in %s", diff)
	}
}

// batchDigest hashes a batch's ids (FNV-1a) for the pinning test below.
func batchDigest(b *model.Batch) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range [][]int32{b.Tokens, b.Targets, b.Src} {
		for _, v := range s {
			h ^= uint64(uint32(v))
			h *= 1099511628211
		}
	}
	return h
}

// TestSamplerPinned pins the synthetic tasks' batches: resuming a checkpoint
// written by an older build relies on the sampler never changing silently. If
// a change is intended, update the digests and say so in the change log.
func TestSamplerPinned(t *testing.T) {
	want := map[string]uint64{"sort": 0xcfae196bcc230878, "add": 0xfcaa61f44b41c218, "seq2seq-reverse": 0xa83b934e8a2438be}
	for name, w := range want {
		d := open(t, preset(t, name))
		got := batchDigest(fill(t, d, Train, 5, 8, 0, 8))
		if got != w {
			t.Errorf("%s: batch digest %#x, pinned %#x", name, got, w)
		}
	}
}
