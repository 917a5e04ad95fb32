package data

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/tokenizer"
)

// bpeCorpus is a text of every pre-token class, long enough to cut into
// many chunks, with indented lines and blank-line runs at the cut points.
func bpeCorpus(n int) string {
	if b, err := os.ReadFile(shakespearePath); err == nil && len(b) >= n {
		return string(b[:n])
	}
	var s strings.Builder
	lines := []string{"First Citizen:", "Before we proceed any further, hear me speak.", "", "  indented 12 lines'll do,", "\t\ttabbed", "ÀÉÎ naïve 中文 🙂", ""}
	for i := 0; s.Len() < n; i++ {
		s.WriteString(lines[i%len(lines)])
		s.WriteString("\n")
	}
	return s.String()
}

func trainedBPE(t *testing.T, text string, specials ...string) *tokenizer.BPE {
	t.Helper()
	tok, err := tokenizer.Train(context.Background(), []string{text}, tokenizer.TrainOptions{VocabSize: 256 + 200 + len(specials), Specials: specials})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func readBin(t *testing.T, path string) []int32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int32, len(b)/2)
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return ids
}

// TestPrepareWritesTheFilesEncoding: chunked, parallel, in-order encoding of
// two files equals encoding each whole file, with <|endoftext|> after each;
// val.bin is the last tenth.
func TestPrepareWritesTheFilesEncoding(t *testing.T) {
	text := bpeCorpus(120_000)
	tok := trainedBPE(t, text, EndOfText)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(a, []byte(text[:70_000]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte(text[70_000:]), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tokens")
	meta, err := Prepare(context.Background(), tok, []string{a, b}, out, PrepareOptions{ValFraction: 0.1, Threads: 3, ChunkBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	eot, _ := tok.Special(EndOfText)
	want, _ := tok.Encode(text[:70_000])
	want = append(want, eot)
	wb, _ := tok.Encode(text[70_000:])
	want = append(append(want, wb...), eot)
	got := append(readBin(t, filepath.Join(out, TrainBin)), readBin(t, filepath.Join(out, ValBin))...)
	if !slices.Equal(got, want) {
		t.Fatalf("train.bin+val.bin hold %d ids that differ from encoding the files whole (%d ids)", len(got), len(want))
	}
	if meta.TrainTokens+meta.ValTokens != int64(len(want)) || meta.ValTokens != int64(len(want)+5)/10 || meta.DType != "uint16" || meta.VocabSize != tok.Size() {
		t.Fatalf("meta %+v for %d ids", meta, len(want))
	}
}

func tokensSpec(dir string, arch model.Arch) jobspec.Spec {
	spec, _ := jobspec.Preset("babygpt")
	spec.Model.Arch = arch
	spec.Model.BlockSize = 32
	spec.Data = jobspec.DataSpec{Task: jobspec.TaskTokens, Path: dir}
	return spec
}

func prepared(t *testing.T, specials ...string) (string, *tokenizer.BPE, []int32) {
	t.Helper()
	text := bpeCorpus(60_000)
	tok := trainedBPE(t, text, specials...)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tokens")
	if _, err := Prepare(context.Background(), tok, []string{src}, out, PrepareOptions{ValFraction: 0.1}); err != nil {
		t.Fatal(err)
	}
	return out, tok, readBin(t, filepath.Join(out, TrainBin))
}

// TestTokensTaskSamplesWindowsOfTheFile: GPT rows are windows of train.bin
// with targets shifted by one, whatever the partition of the rows.
func TestTokensTaskSamplesWindowsOfTheFile(t *testing.T) {
	dir, tok, train := prepared(t, EndOfText)
	ds, err := Open(tokensSpec(dir, model.ArchGPT))
	if err != nil {
		t.Fatal(err)
	}
	if ds.Tokenizer().Size() != tok.Size() || ds.Info().TrainTokens != len(train) {
		t.Fatalf("Info %+v, tokenizer %d ids; want %d train tokens, %d ids", ds.Info(), ds.Tokenizer().Size(), len(train), tok.Size())
	}
	var whole, part model.Batch
	if err := ds.Fill(&whole, Train, 7, 8, 0, 8); err != nil {
		t.Fatal(err)
	}
	T := whole.T
	for r := range 8 {
		x, y := whole.Tokens[r*T:(r+1)*T], whole.Targets[r*T:(r+1)*T]
		found := false
		for i := 0; i+T < len(train) && !found; i++ {
			found = slices.Equal(train[i:i+T], x) && slices.Equal(train[i+1:i+T+1], y)
		}
		if !found {
			t.Fatalf("row %d is not a window of train.bin with its next-token targets", r)
		}
	}
	if err := ds.Fill(&part, Train, 7, 8, 3, 6); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(part.Tokens, whole.Tokens[3*T:6*T]) {
		t.Fatal("rows [3, 6) differ from the same rows of the whole batch")
	}
}

// BERT rows of token files are sentence pairs, [CLS] A [SEP] B [SEP], with
// the tokenizer's specials: A and B non-empty, split at varying points,
// consecutive spans of train.bin; token type 0 through the first [SEP] and
// 1 after it; the masked positions are stream tokens only, as many as
// data.mask_prob of them asks.
func TestTokensTaskForBERTUsesTheTokenizersSpecials(t *testing.T) {
	dir, tok, train := prepared(t, PadToken, CLSToken, SEPToken, MaskToken)
	ds, err := Open(tokensSpec(dir, model.ArchBERT))
	if err != nil {
		t.Fatal(err)
	}
	const rows = 16
	var b model.Batch
	if err := ds.Fill(&b, Train, 1, rows, 0, rows); err != nil {
		t.Fatal(err)
	}
	cls, _ := tok.Special(CLSToken)
	sep, _ := tok.Special(SEPToken)
	mask, _ := tok.Special(MaskToken)
	T, L := b.T, b.T-3
	wantMasked := maskCount(L, 0.15)
	masked, splits := 0, map[int]bool{}
	for r := range rows {
		row, tgt, types := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T], b.TokenTypes[r*T:(r+1)*T]
		if row[0] != cls || row[T-1] != sep {
			t.Fatalf("row %d: [CLS] … [SEP] expected, got %d … %d", r, row[0], row[T-1])
		}
		mid := slices.Index(row[1:T-1], sep) + 1
		if mid < 2 || mid > T-3 || slices.Contains(row[mid+1:T-1], sep) {
			t.Fatalf("row %d: want exactly one [SEP] between two non-empty segments, got %v", r, row)
		}
		splits[mid] = true
		for j, ty := range types {
			if want := int32(min(1, max(0, j-mid))); ty != want {
				t.Fatalf("row %d: token type %d at %d (middle [SEP] at %d), want %d", r, ty, j, mid, want)
			}
		}
		// Undo the masking: A then B is one window of the stream.
		stream := make([]int32, 0, L)
		chosen := 0
		for j := 1; j < T-1; j++ {
			if j == mid {
				if tgt[j] != model.IgnoreIndex {
					t.Fatalf("row %d: the middle [SEP] is a masked-LM target", r)
				}
				continue
			}
			id := row[j]
			if tgt[j] != model.IgnoreIndex {
				id, chosen = tgt[j], chosen+1
				if row[j] == mask {
					masked++
				}
			}
			stream = append(stream, id)
		}
		if chosen != wantMasked {
			t.Fatalf("row %d: %d positions chosen, want %d", r, chosen, wantMasked)
		}
		if i := windowAt(train, stream); i < 0 {
			t.Fatalf("row %d: A ‖ B is not a window of train.bin", r)
		}
	}
	if masked == 0 {
		t.Fatalf("no [MASK] in %d BERT rows", rows)
	}
	if len(splits) < 4 {
		t.Fatalf("the A/B split fell at only %d places in %d rows", len(splits), rows)
	}
	// a tokenizer without BERT's specials is refused by name
	dir2, _, _ := prepared(t, EndOfText)
	if _, err := Open(tokensSpec(dir2, model.ArchBERT)); err == nil || !strings.Contains(err.Error(), "[MASK]") {
		t.Fatalf("BERT on a tokenizer without [MASK]: err = %v", err)
	}
}

// TestTokenFilesFromElsewhere: nanoGPT's prepare.py writes no meta.json; the
// tokenizer then comes from data.tokenizer (here GPT-2's vocab.json +
// merges.txt), and uint32 files are read when the vocabulary needs them.
func TestTokenFilesFromElsewhere(t *testing.T) {
	dir, tok, train := prepared(t, EndOfText)
	if err := os.Remove(filepath.Join(dir, MetaFile)); err != nil {
		t.Fatal(err)
	}
	spec := tokensSpec(dir, model.ArchGPT)
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "data.tokenizer") {
		t.Fatalf("no meta.json, no data.tokenizer: err = %v", err)
	}
	vocab, merges := tok.MarshalGPT2()
	tdir := t.TempDir()
	os.WriteFile(filepath.Join(tdir, "vocab.json"), vocab, 0o644)
	os.WriteFile(filepath.Join(tdir, "merges.txt"), merges, 0o644)
	spec.Data.Tokenizer = filepath.Join(tdir, "vocab.json")
	ds, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Info().TrainTokens != len(train) {
		t.Fatalf("%d train tokens, want %d", ds.Info().TrainTokens, len(train))
	}
	// the same ids as uint32: read as such when meta.json says so
	wide := t.TempDir()
	for _, name := range []string{TrainBin, ValBin} {
		ids := readBin(t, filepath.Join(dir, name))
		var b []byte
		for _, id := range ids {
			b = binary.LittleEndian.AppendUint32(b, uint32(id))
		}
		os.WriteFile(filepath.Join(wide, name), b, 0o644)
	}
	os.WriteFile(filepath.Join(wide, MetaFile), []byte(`{"dtype":"uint32"}`), 0o644)
	spec.Data.Path = wide
	ds32, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	var a, b model.Batch
	ds.Fill(&a, Train, 3, 4, 0, 4)
	ds32.Fill(&b, Train, 3, 4, 0, 4)
	if !slices.Equal(a.Tokens, b.Tokens) || !slices.Equal(a.Targets, b.Targets) {
		t.Fatal("uint32 files give other batches than the same ids as uint16")
	}
}

func TestBadTokenFilesAreRefused(t *testing.T) {
	dir, _, _ := prepared(t, EndOfText)
	spec := tokensSpec(dir, model.ArchGPT)

	small := trainedBPE(t, "abc abc abc", EndOfText) // 257+ ids: far fewer than the files use
	tdir := t.TempDir()
	small.Save(filepath.Join(tdir, "small.json"))
	spec.Data.Tokenizer = filepath.Join(tdir, "small.json")
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "use the tokenizer the files were prepared with") {
		t.Fatalf("tokenizer of another size than meta.json: err = %v", err)
	}
	// without meta.json nothing says which tokenizer made the ids: the first batch does
	os.Remove(filepath.Join(dir, MetaFile))
	ds, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	var b model.Batch
	if err := ds.Fill(&b, Train, 0, 8, 0, 8); err == nil || !strings.Contains(err.Error(), "not made with this tokenizer") {
		t.Fatalf("ids beyond the vocabulary: err = %v", err)
	}
	// a truncated file (half an id)
	f, _ := os.OpenFile(filepath.Join(dir, ValBin), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{1})
	f.Close()
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("odd-sized val.bin: err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, MetaFile), []byte(`{"dtype":"int8"}`), 0o644)
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "dtype") {
		t.Fatalf("unknown dtype: err = %v", err)
	}
	if _, err := Prepare(context.Background(), small, nil, t.TempDir(), PrepareOptions{}); err == nil || !strings.Contains(err.Error(), "no input files") {
		t.Fatalf("prepare without files: err = %v", err)
	}
	if _, err := Prepare(context.Background(), small, []string{filepath.Join(dir, "missing.txt")}, t.TempDir(), PrepareOptions{}); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Fatalf("prepare of a missing file: err = %v", err)
	}
	spec.Model.BlockSize = 1 << 20
	spec.Data.Path, spec.Data.Tokenizer = prepared2(t), ""
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "model.block_size") {
		t.Fatalf("block longer than the val split: err = %v", err)
	}
	bad := spec
	bad.Data = jobspec.DataSpec{Task: jobspec.TaskTokens}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "data.path") {
		t.Fatalf("tokens without data.path: err = %v", err)
	}
}

func prepared2(t *testing.T) string {
	dir, _, _ := prepared(t, EndOfText)
	return dir
}

// TestTokenizerHashFollowsTheTokenizerNotItsFile: meta.json's hash accepts
// the same tokenizer in another file form and refuses another tokenizer of
// the same size.
func TestTokenizerHashFollowsTheTokenizerNotItsFile(t *testing.T) {
	dir, tok, _ := prepared(t, EndOfText)
	spec := tokensSpec(dir, model.ArchGPT)
	vocab, merges := tok.MarshalGPT2()
	tdir := t.TempDir()
	os.WriteFile(filepath.Join(tdir, "vocab.json"), vocab, 0o644)
	os.WriteFile(filepath.Join(tdir, "merges.txt"), merges, 0o644)
	spec.Data.Tokenizer = filepath.Join(tdir, "vocab.json")
	if _, err := Open(spec); err != nil {
		t.Fatalf("the same tokenizer as vocab.json + merges.txt: %v", err)
	}
	other := trainedBPE(t, strings.Repeat("zebra quagga okapi 0123456789 ", 400)+bpeCorpus(20_000), EndOfText)
	if other.Size() != tok.Size() {
		t.Fatalf("test setup: other tokenizer has %d ids, want %d", other.Size(), tok.Size())
	}
	other.Save(filepath.Join(tdir, "other.json"))
	spec.Data.Tokenizer = filepath.Join(tdir, "other.json")
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "is not the tokenizer") {
		t.Fatalf("another tokenizer of the same size: err = %v", err)
	}
}

// TestMappedFilesGiveTheBatchesOfTheSameIDsInMemory: the memory-mapped
// source and an in-memory slice of the same ids sample the same rows.
func TestMappedFilesGiveTheBatchesOfTheSameIDsInMemory(t *testing.T) {
	dir, _, train := prepared(t, EndOfText)
	ds, err := Open(tokensSpec(dir, model.ArchGPT))
	if err != nil {
		t.Fatal(err)
	}
	mem := *ds
	task := *ds.task.(*textTask)
	task.trainSeq, task.valSeq = memSeq(train), memSeq(readBin(t, filepath.Join(dir, ValBin)))
	mem.task = &task
	for step := range int64(5) {
		var a, b model.Batch
		if err := ds.Fill(&a, Val, step, 6, 0, 6); err != nil {
			t.Fatal(err)
		}
		mem.Fill(&b, Val, step, 6, 0, 6)
		if !slices.Equal(a.Tokens, b.Tokens) || !slices.Equal(a.Targets, b.Targets) {
			t.Fatalf("step %d: mapped and in-memory batches differ", step)
		}
	}
}

// TestTokenFilesLargerThanMemoryAreNotRead: a 2 GiB train.bin (sparse:
// nothing on disk but its last page) is mapped, not read; sampling batches
// from it touches only their pages, and the process stays small.
func TestTokenFilesLargerThanMemoryAreNotRead(t *testing.T) {
	if testing.Short() {
		t.Skip("maps a 2 GiB sparse file")
	}
	dir, _, _ := prepared(t, EndOfText)
	f, err := os.OpenFile(filepath.Join(dir, TrainBin), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	const size = 2 << 30 // 1 Gi uint16 ids, all 0 but the prepared ones at the start
	if err := f.Truncate(size); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	before, beforeAnon := rssBytes(t, "VmRSS:"), rssBytes(t, "RssAnon:")
	ds, err := Open(tokensSpec(dir, model.ArchGPT))
	if err != nil {
		t.Fatal(err)
	}
	if ds.Info().TrainTokens != size/2 {
		t.Fatalf("%d train tokens, want %d", ds.Info().TrainTokens, size/2)
	}
	var b model.Batch
	for step := range int64(200) {
		if err := ds.Fill(&b, Train, step, 16, 0, 16); err != nil {
			t.Fatal(err)
		}
	}
	// 200 × 16 windows touch ≤ 3,200 × 2 pages: ≤ 26 MB even if none were shared
	grew, anon := rssBytes(t, "VmRSS:")-before, rssBytes(t, "RssAnon:")-beforeAnon
	t.Logf("sampling 3,200 windows of a 2 GiB file: resident +%d MiB, of it anonymous +%d MiB", grew>>20, anon>>20)
	if anon > 64<<20 || grew > 128<<20 {
		t.Fatalf("resident memory grew %d MiB (anonymous %d MiB) sampling from a 2 GiB file; it is being read, not mapped", grew>>20, anon>>20)
	}
}

// rssBytes is a size field of this process's /proc/self/status (Linux):
// VmRSS, the resident set; RssAnon, its part that is not file pages.
func rssBytes(t *testing.T, field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			var kb int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}

// windowAt is the first offset where w occurs in s, or -1.
func windowAt(s, w []int32) int {
	for i := 0; i+len(w) <= len(s); i++ {
		if slices.Equal(s[i:i+len(w)], w) {
			return i
		}
	}
	return -1
}

// Encoder–decoder rows of token files: the source is a window of train.bin,
// the target the window that follows it, the decoder input [BOS] (here the
// tokenizer's <|endoftext|>) and the target shifted by one; no padding.
func TestTokensTaskForEncDecContinuesTheSource(t *testing.T) {
	dir, tok, train := prepared(t, EndOfText)
	ds, err := Open(tokensSpec(dir, model.ArchEncDec))
	if err != nil {
		t.Fatal(err)
	}
	var b model.Batch
	if err := ds.Fill(&b, Train, 3, 8, 0, 8); err != nil {
		t.Fatal(err)
	}
	eot, _ := tok.Special(EndOfText)
	S, T := b.S, b.T
	if S != 32 || T != 32 || b.KeyValid != nil {
		t.Fatalf("S %d T %d (KeyValid %v), want 32 × 32 and no padding mask", S, T, b.KeyValid != nil)
	}
	for r := range 8 {
		src, sv := b.Src[r*S:(r+1)*S], b.SrcValid[r*S:(r+1)*S]
		x, y := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T]
		i := windowAt(train, append(slices.Clone(src), y...))
		if i < 0 {
			t.Fatalf("row %d: source ‖ target is not one window of train.bin", r)
		}
		if x[0] != eot || !slices.Equal(x[1:], y[:T-1]) {
			t.Fatalf("row %d: decoder input %v, want [BOS] + target[:T-1] (target %v)", r, x[:4], y[:4])
		}
		for j, v := range sv {
			if v != 1 {
				t.Fatalf("row %d: SrcValid[%d] = %d, want every source position real", r, j, v)
			}
		}
	}
	// no start token: refused by name
	dir2, _, _ := prepared(t, PadToken)
	if _, err := Open(tokensSpec(dir2, model.ArchEncDec)); err == nil || !strings.Contains(err.Error(), EndOfText) {
		t.Fatalf("encdec on a tokenizer without [BOS] or <|endoftext|>: err = %v", err)
	}
}

// Row shapes that cannot be built are refused naming model.block_size: a
// BERT pair needs two non-empty segments, and the encoder–decoder a source
// and a target that both fit a split.
func TestTokensTaskRefusesRowsThatDoNotFit(t *testing.T) {
	dir, _, _ := prepared(t, PadToken, CLSToken, SEPToken, MaskToken, EndOfText)
	spec := tokensSpec(dir, model.ArchBERT)
	spec.Model.BlockSize = 4
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "model.block_size") || !strings.Contains(err.Error(), "≥ 5") {
		t.Fatalf("BERT pairs with block_size 4: %v", err)
	}
	spec = tokensSpec(dir, model.ArchEncDec)
	ds, err := Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Model.BlockSize = ds.Info().ValTokens/2 + 1 // one window fits, a window and its continuation do not
	if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "model.block_size") || !strings.Contains(err.Error(), "lower block_size") {
		t.Fatalf("encdec with block_size %d: %v", spec.Model.BlockSize, err)
	}
}
