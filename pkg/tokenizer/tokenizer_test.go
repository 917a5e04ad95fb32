package tokenizer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

const shakespearePath = "../../../shared/data/tinyshakespeare.txt"

// tricky covers every alternative of GPT-2's pattern and its edges.
var tricky = []string{
	"Hello world", "  two spaces", "trailing   ", "\ttab\tand\nnewline\n\n\nruns",
	"I'm can't we've they'll she'd you're it's 'tis 'S", "x''s '", "don't  'll",
	"3.14159 and 1,000,000 or 42nd", "a1b2 c3", "¡Hola, señor! ¿Qué tal? naïve café",
	"中文字符 and 日本語のテキスト", "emoji 🙂🙂 and ✓ marks", "Ⅻ ½ ² numbers", "tabs\t\t\tx",
	"line\r\nwindows\r\n", "  \n  \n x", "end with space ", " ", "\n", "!!!??? ...---", "a\u00a0b\u2003c",
	"<|endoftext|>ignored as text here", "$$$100 #tag @user", "x\u0301 combining",
}

func corpus(t testing.TB, n int) string {
	b, err := os.ReadFile(shakespearePath)
	if err != nil {
		// the built-in fallback: a repetitive text with every class of pre-token
		var s strings.Builder
		for i := 0; s.Len() < n; i++ {
			s.WriteString(tricky[i%len(tricky)])
			s.WriteString(" the quick brown fox's 12 jumps, over the lazy dog.\n")
		}
		return s.String()
	}
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// python runs testdata/reference.py with Debian's python3 and its regex module.
func python(t *testing.T, stdin string, args ...string) []byte {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import regex").Run(); err != nil {
		t.Skipf("the Python reference needs python3 with regex (apt-get install python3-regex): %v", err)
	}
	cmd := exec.Command(py, append([]string{"testdata/reference.py"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func TestSplitMatchesPythonRegex(t *testing.T) {
	cl100kTricky := []string{"'S 'LL 'Ve 'rE 'D 'x", "hello\n\n  world  \r\n\t x", "12345678 1234 x9", "(hello) [world]{x}",
		"!!!\n\n??? \r\n", "a  \n  b", "\n\n\n", " \n", "x \t\n \ty", "..hello", " .hello", "\u00a0\nx", "don't DON'T"}
	texts := append(append(slices.Clone(tricky), cl100kTricky...), corpus(t, 200_000))
	for _, p := range []Pattern{PatternGPT2, PatternCL100K} {
		for _, text := range texts {
			var want []string
			args := []string{"split"}
			if p == PatternCL100K {
				args = append(args, "cl100k")
			}
			if err := json.Unmarshal(python(t, text, args...), &want); err != nil {
				t.Fatal(err)
			}
			got := p.Split(text)
			if !slices.Equal(got, want) {
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] {
						t.Fatalf("%s Split(%.40q): piece %d is %q, Python's regex gives %q", p, text, i, got[i], want[i])
					}
				}
				t.Fatalf("%s Split(%.40q): %d pieces, Python's regex gives %d", p, text, len(got), len(want))
			}
		}
	}
}

// naiveTrain is BPE training at its plainest (and the same as
// testdata/reference.py train, minbpe's algorithm, which the test also runs): every round recount all pairs
// over all pre-tokens of the text, merge the most frequent (smallest pair on ties).
func naiveTrain(text string, nMerges int) []pair {
	var words [][]int32
	for _, p := range Split(text) {
		w := make([]int32, len(p))
		for i := range len(p) {
			w[i] = int32(p[i])
		}
		words = append(words, w)
	}
	var merges []pair
	for id := int32(256); len(merges) < nMerges; id++ {
		counts := map[pair]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				counts[pair{w[i], w[i+1]}]++
			}
		}
		var best pair
		n := 0
		for p, c := range counts {
			if c > n || c == n && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, n = p, c
			}
		}
		if n < 2 {
			break
		}
		merges = append(merges, best)
		for wi, w := range words {
			out := []int32{}
			for i := 0; i < len(w); {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out, i = append(out, id), i+2
				} else {
					out, i = append(out, w[i]), i+1
				}
			}
			words[wi] = out
		}
	}
	return merges
}

func TestTrainMatchesNaiveTrainer(t *testing.T) {
	text := corpus(t, 60_000)
	tok, err := Train(context.Background(), []string{text}, TrainOptions{VocabSize: 256 + 150, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	var py [][2]int32
	if err := json.Unmarshal(python(t, text, "train", "150"), &py); err != nil {
		t.Fatal(err)
	}
	want := naiveTrain(text, 150)
	for i, p := range py {
		if i >= len(want) || pair(p) != want[i] {
			t.Fatalf("the Go and Python reference trainers disagree at merge %d", i)
		}
	}
	if len(py) != len(want) {
		t.Fatalf("Python's trainer makes %d merges, the naive Go one %d", len(py), len(want))
	}
	if !slices.Equal(tok.mergeList, want) {
		for i := range min(len(want), len(tok.mergeList)) {
			if tok.mergeList[i] != want[i] {
				t.Fatalf("merge %d is %v, the naive trainer's is %v", i, tok.mergeList[i], want[i])
			}
		}
		t.Fatalf("%d merges, the naive trainer makes %d", len(tok.mergeList), len(want))
	}
	if tok.Size() != 256+150 {
		t.Fatalf("Size() = %d, want %d", tok.Size(), 256+150)
	}
}

func trained(t *testing.T) *BPE {
	t.Helper()
	tok, err := Train(context.Background(), []string{corpus(t, 400_000)}, TrainOptions{VocabSize: 1024, Specials: []string{"<|endoftext|>"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func evalText(t *testing.T) string {
	full := corpus(t, 1<<21)
	return full[len(full)-30_000:] + strings.Join(tricky, " ")
}

func TestEncodeMatchesOpenAIEncoder(t *testing.T) {
	tok := trained(t)
	dir := t.TempDir()
	vocab, merges := tok.MarshalGPT2()
	vpath := filepath.Join(dir, "vocab.json")
	if err := os.WriteFile(vpath, vocab, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), merges, 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(evalText(t), "<|endoftext|>", "<|end|>") // encoder.py has no specials
	var want []int32
	if err := json.Unmarshal(python(t, text, "gpt2", vpath, filepath.Join(dir, "merges.txt")), &want); err != nil {
		t.Fatal(err)
	}
	got, _ := tok.Encode(text)
	assertIDs(t, "Encode", got, want)
	// the same ids through every file form
	fromGPT2, err := Load(vpath)
	if err != nil {
		t.Fatal(err)
	}
	hf, _ := tok.MarshalJSON()
	fromHF, err := ParseHF(hf)
	if err != nil {
		t.Fatal(err)
	}
	for name, tk := range map[string]*BPE{"vocab.json+merges.txt": fromGPT2, "tokenizer.json": fromHF} {
		ids, _ := tk.Encode(text)
		assertIDs(t, name, ids, want)
		if id, ok := tk.Special("<|endoftext|>"); !ok || id != 1023 {
			t.Fatalf("%s: <|endoftext|> = %d, %v; want 1023", name, id, ok)
		}
	}
}

func TestTiktokenMatchesReference(t *testing.T) {
	tok := trained(t)
	path := filepath.Join(t.TempDir(), "trained.tiktoken")
	if err := os.WriteFile(path, tok.MarshalTiktoken(), 0o644); err != nil {
		t.Fatal(err)
	}
	tt, err := ParseTiktoken(tok.MarshalTiktoken(), map[string]int32{"<|endoftext|>": 1023})
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(evalText(t), "<|endoftext|>", "<|end|>")
	var want []int32
	if err := json.Unmarshal(python(t, text, "tiktoken", path), &want); err != nil {
		t.Fatal(err)
	}
	got, _ := tt.Encode(text)
	assertIDs(t, "tiktoken Encode", got, want)
	// a rank file written back as tokenizer.json keeps the encoding
	hf, _ := tt.MarshalJSON()
	back, err := ParseHF(hf)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := back.Encode(text)
	assertIDs(t, "tiktoken → tokenizer.json", ids, want)
}

func assertIDs(t *testing.T, what string, got, want []int32) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: id %d is %d, the reference gives %d (of %d / %d ids)", what, i, got[i], want[i], len(got), len(want))
		}
	}
	t.Fatalf("%s: %d ids, the reference gives %d", what, len(got), len(want))
}

func TestSpecialsAndRoundTrip(t *testing.T) {
	tok := trained(t)
	eot, _ := tok.Special("<|endoftext|>")
	ids, _ := tok.Encode("first doc<|endoftext|>second doc<|endoftext|>")
	if ids[len(ids)-1] != eot || slices.Index(ids, eot) == len(ids)-1 {
		t.Fatalf("specials not matched verbatim: %v (eot %d)", ids, eot)
	}
	a, _ := tok.Encode("first doc")
	if !slices.Equal(ids[:len(a)], a) || ids[len(a)] != eot {
		t.Fatalf("text before a special is encoded as if alone: got %v, want %v then %d", ids, a, eot)
	}
	for _, s := range append(slices.Clone(tricky), evalText(t), "first doc<|endoftext|>second") {
		ids, _ := tok.Encode(s)
		if got := tok.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%.40q)) = %.40q", s, got)
		}
	}
	// a sequence cut inside a character decodes with U+FFFD, not invalid UTF-8
	ids, _ = tok.Encode("🙂")
	if got := tok.Decode(ids[:len(ids)-1]); !utf8.ValidString(got) || !strings.Contains(got, "\uFFFD") {
		t.Fatalf("partial character decodes to %q", got)
	}
}

func TestSegmentsEncodeLikeTheWhole(t *testing.T) {
	tok := trained(t)
	text := evalText(t) + "\n\n  \n\tindented\nnext\n"
	whole, _ := tok.Encode(text)
	var parts []int32
	segs := Segments(text, 500)
	if len(segs) < 10 {
		t.Fatalf("only %d segments of 500 bytes in %d bytes", len(segs), len(text))
	}
	cache := Cache{}
	for _, s := range segs {
		parts = tok.AppendEncode(parts, s, cache)
	}
	assertIDs(t, "segment by segment", parts, whole)
	if strings.Join(segs, "") != text {
		t.Fatal("segments do not concatenate to the text")
	}
}

func TestBadFilesAreRefused(t *testing.T) {
	tok := trained(t)
	hf, _ := tok.MarshalJSON()
	for name, c := range map[string]struct {
		edit func(string) string
		want string
	}{
		"wordpiece": {func(s string) string { return strings.Replace(s, `"type":"BPE"`, `"type":"WordPiece"`, 1) }, "only byte-level BPE"},
		"metaspace": {func(s string) string {
			return strings.Replace(s, `"type":"ByteLevel","add_prefix_space":false`, `"type":"Metaspace","add_prefix_space":false`, 1)
		}, "pre_tokenizer must be ByteLevel"},
		"bad merge": {func(s string) string { return strings.Replace(s, `"merges":[`, `"merges":[["Ġ","nonexistent"],`, 1) }, "merge 0"},
		"not json":  {func(s string) string { return s[:len(s)/2] }, "tokenizer.json"},
	} {
		_, err := ParseHF([]byte(c.edit(string(hf))))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, c.want)
		}
	}
	if _, err := ParseTiktoken([]byte("QQ== 0\nQQ== 1\n"), nil); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("duplicate tiktoken token: err = %v", err)
	}
	vocab, merges := tok.MarshalGPT2()
	if _, err := ParseGPT2(vocab, append(merges, "nospace\n"...)); err == nil || !strings.Contains(err.Error(), "has no space") {
		t.Errorf("merges.txt line without a space: err = %v", err)
	}
	for in, want := range map[string]string{"QQ==": `want "<base64> <rank>"`, "QQ== x": "rank", "!!! 0": "token"} {
		if _, err := ParseTiktoken([]byte(in+"\n"), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tiktoken %q: err = %v, want it to say %q", in, err, want)
		}
	}
	if _, err := ParseTiktoken([]byte("QQ== 0\n"), nil); err == nil || !strings.Contains(err.Error(), "byte 0x00 has no token") {
		t.Errorf("tiktoken without every byte: err = %v", err)
	}
	if _, err := Train(context.Background(), []string{"x"}, TrainOptions{VocabSize: 100}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("vocab 100: err = %v", err)
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range tricky {
		f.Add(s)
	}
	tok, err := Train(context.Background(), []string{corpus(f, 50_000)}, TrainOptions{VocabSize: 400, Specials: []string{"<|endoftext|>"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, _ := tok.Encode(s)
		if got := string(tok.DecodeBytes(ids)); got != s {
			t.Fatalf("DecodeBytes(Encode(%q)) = %q", s, got)
		}
		if pieces := Split(s); strings.Join(pieces, "") != s || slices.Contains(pieces, "") {
			t.Fatalf("Split(%q) = %q", s, pieces)
		}
	})
}

// cl100k_base's pre-tokenization: a tokenizer trained with it, written as
// cl100k_base.tiktoken, loads with PatternCL100K (from the name) and
// encodes as tiktoken's algorithm does with that regex (the Python
// reference); written as tokenizer.json it keeps the pattern, as Hugging
// Face writes it; its pieces differ from GPT-2's (so the pattern is in
// force, not just named). o200k_base is refused by name.
func TestCL100KPattern(t *testing.T) {
	text := strings.ReplaceAll(evalText(t), "<|endoftext|>", "<|end|>")
	tok, err := Train(context.Background(), []string{corpus(t, 200_000)}, TrainOptions{VocabSize: 600, Pattern: PatternCL100K})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "cl100k_base.tiktoken")
	if err := os.WriteFile(path, tok.MarshalTiktoken(), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Pattern() != PatternCL100K {
		t.Fatalf("Load(cl100k_base.tiktoken): pattern %s, want cl100k", loaded.Pattern())
	}
	var want []int32
	if err := json.Unmarshal(python(t, text, "tiktoken", path, "cl100k"), &want); err != nil {
		t.Fatal(err)
	}
	got, _ := loaded.Encode(text)
	assertIDs(t, "cl100k Encode", got, want)
	var gpt2 []int32
	if err := json.Unmarshal(python(t, text, "tiktoken", path), &gpt2); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(gpt2, want) {
		t.Fatal("the text encodes the same under GPT-2's pattern: the comparison does not test the pattern")
	}
	hf, _ := loaded.MarshalJSON()
	back, err := ParseHF(hf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Pattern() != PatternCL100K {
		t.Fatalf("tokenizer.json round trip: pattern %s", back.Pattern())
	}
	ids, _ := back.Encode(text)
	assertIDs(t, "cl100k → tokenizer.json", ids, want)
	if !strings.Contains(string(hf), `"type":"Split"`) {
		t.Fatalf("tokenizer.json has no Split pre-tokenizer: %.200s", hf)
	}
	o200k := filepath.Join(dir, "o200k_base.tiktoken")
	if err := os.WriteFile(o200k, tok.MarshalTiktoken(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(o200k); err == nil || !strings.Contains(err.Error(), "o200k") {
		t.Fatalf("Load(o200k_base.tiktoken): %v, want a refusal naming o200k", err)
	}
}

func TestParsePattern(t *testing.T) {
	for in, want := range map[string]Pattern{"": PatternGPT2, "gpt2": PatternGPT2, "r50k_base": PatternGPT2, "CL100K_base": PatternCL100K} {
		if got, err := ParsePattern(in); err != nil || got != want {
			t.Errorf("ParsePattern(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"o200k": "not implemented", "gpt4": "want gpt2 or cl100k"} {
		if _, err := ParsePattern(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePattern(%q): %v, want an error saying %q", in, err, want)
		}
	}
}
