package jobspec

import (
	"strings"
	"testing"
	"time"
)

func TestPresetsAreValid(t *testing.T) {
	for _, name := range PresetNames() {
		s, err := Preset(name)
		if err != nil {
			t.Fatalf("Preset(%q): %v", name, err)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("preset %q is invalid: %v", name, err)
		}
		// The canonical JSON form parses back to the same spec.
		back, err := Parse(s.Marshal())
		if err != nil {
			t.Fatalf("preset %q: parse of its own JSON: %v", name, err)
		}
		if string(back.Marshal()) != string(s.Marshal()) {
			t.Errorf("preset %q does not round-trip:\n%s\nvs\n%s", name, s.Marshal(), back.Marshal())
		}
	}
}

func TestParseYAMLFillsDefaults(t *testing.T) {
	doc := `
name: tiny
model: {arch: gpt, n_layer: 1, n_head: 2, n_embd: 8, block_size: 11}
data: {task: sort}
train: {max_iters: 10, batch_size: 4, learning_rate: 0.001, eval_iters: 2}
`
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Model.NHidden != 32 || s.Model.Activation != "gelu" || s.Model.LayerNormEps != 1e-5 {
		t.Errorf("model defaults not filled: %+v", s.Model)
	}
	if s.Data.Length != 6 || s.Data.Digits != 3 {
		t.Errorf("sort defaults not filled: %+v", s.Data)
	}
	if s.Train.GradAccum != 1 || !*s.Train.DecayLR || s.Train.LRDecayIters != 10 || s.Train.Eps != 1e-8 {
		t.Errorf("train defaults not filled: %+v", s.Train)
	}
	if s.Parallel.TP != 1 || s.Parallel.MinWorkers != 1 || s.Parallel.ScaleUp != "checkpoint" {
		t.Errorf("parallel defaults not filled: %+v", s.Parallel)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	base := func(mut string) string {
		return `{"model": {"arch": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8` + mut + `},
		 "data": {"task": "sort"},
		 "train": {"max_iters": 10, "batch_size": 4, "learning_rate": 0.001, "eval_iters": 2}}`
	}
	cases := []struct {
		name, doc string
		want      []string // substrings the error must contain
	}{
		{"empty", ``, []string{"empty"}},
		{"not yaml", `{model: [`, []string{"not valid YAML"}},
		{"unknown top-level field", `{"modle": {}}`, []string{`modle: unknown field, did you mean model?`}},
		{"unknown nested field", base(`, "n_layers": 3`), []string{`model.n_layers: unknown field, did you mean model.n_layer?`}},
		{"wrong type", base(`, "dropout": "high"`), []string{"model.dropout", "string", "float64"}},
		{"unknown model", strings.Replace(base(""), `"gpt"`, `"lstm"`, 1), []string{"model.arch", `"lstm"`, "gpt, bert, encdec"}},
		{"heads do not divide width", strings.Replace(base(""), `"n_embd": 8`, `"n_embd": 9`, 1), []string{"model.n_embd", "not divisible by n_head 2"}},
		{"unknown task", strings.Replace(base(""), `"sort"`, `"poetry"`, 1), []string{"data.task", `"poetry"`}},
		{"text without path", strings.Replace(base(""), `"sort"`, `"text"`, 1), []string{"data.path", "required"}},
		{"bad sha", strings.Replace(base(""), `"task": "sort"`, `"task": "text", "path": "x.txt", "sha256": "abc"`, 1), []string{"data.sha256"}},
		{"reverse needs encdec", strings.Replace(base(""), `"sort"`, `"reverse"`, 1), []string{"data.task", "encdec"}},
		{"tp does not divide heads", strings.Replace(base(""), `"train"`, `"parallel": {"tp": 4}, "train"`, 1), []string{"parallel.tp", "n_head 2"}},
		{"min_workers beyond the batch", strings.Replace(base(""), `"train"`, `"parallel": {"tp": 2, "min_workers": 100}, "train"`, 1),
			[]string{"parallel.min_workers", "can never run", "train.batch_size 4", "8 workers"}},
		{"bad wait_timeout", strings.Replace(base(""), `"train"`, `"parallel": {"wait_timeout": "ten minutes"}, "train"`, 1),
			[]string{"parallel.wait_timeout", "30m", `"ten minutes"`}},
		{"negative wait_timeout", strings.Replace(base(""), `"train"`, `"parallel": {"wait_timeout": "-1m"}, "train"`, 1),
			[]string{"parallel.wait_timeout"}},
		{"negative lr", strings.Replace(base(""), `0.001`, `-1`, 1), []string{"train.learning_rate"}},
		{"mask_prob on gpt", strings.Replace(base(""), `"task": "sort"`, `"task": "sort", "mask_prob": 0.2`, 1), []string{"data.mask_prob", "bert"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse accepted a bad spec:\n%s", tc.doc)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	s := Spec{}.WithDefaults()
	err := s.Validate()
	if err == nil {
		t.Fatal("zero spec validated")
	}
	for _, field := range []string{"model.arch", "model.n_layer", "data.task", "train.max_iters", "train.batch_size", "train.learning_rate"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

func TestOverride(t *testing.T) {
	s, err := Override(Default(), []string{"train.max_iters=7", "model.n_layer=3", "name=x", "parallel.tp=2"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.MaxIters != 7 || s.Model.NLayer != 3 || s.Name != "x" || s.Parallel.TP != 2 {
		t.Errorf("overrides not applied: %+v", s)
	}
	// Derived defaults follow the fields they derive from.
	if s.Parallel.MinWorkers != 2 || s.Train.LRDecayIters != 51 {
		t.Errorf("derived defaults not re-derived: min_workers %d, lr_decay_iters %d", s.Parallel.MinWorkers, s.Train.LRDecayIters)
	}
	if s, err := Override(Default(), []string{"parallel.tp=2", "parallel.min_workers=4"}); err != nil || s.Parallel.MinWorkers != 4 {
		t.Errorf("explicit min_workers lost: %v %+v", err, s.Parallel)
	}
	for _, tc := range []struct{ set, want string }{
		{"train.max_iter=7", `train.max_iter: unknown field, did you mean train.max_iters?`},
		{"model.n_layer=many", "model.n_layer"},
		{"train", "want key=value"},
		{"name.x=1", "name is not a section"},
		{"model.n_head=3", "model.n_embd"},
	} {
		if _, err := Override(Default(), []string{tc.set}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Override(%q) = %v, want error mentioning %q", tc.set, err, tc.want)
		}
	}
}

func TestOverrideRederivesDerivedFields(t *testing.T) {
	s, err := Preset("babygpt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Override(s, []string{"model.n_embd=384"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Model.NHidden != 1536 {
		t.Errorf("-set model.n_embd=384 on babygpt: n_hidden %d, want 1536 (4·n_embd)", got.Model.NHidden)
	}
	// Set in the same override: kept.
	got, err = Override(s, []string{"model.n_embd=384", "model.n_hidden=1000"})
	if err != nil || got.Model.NHidden != 1000 {
		t.Errorf("explicit n_hidden in the same override: %v, n_hidden %d, want 1000", err, got.Model.NHidden)
	}
	// Set before (a value that is not its derivation): kept too.
	wide, err := Override(s, []string{"model.n_hidden=1000"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = Override(wide, []string{"model.n_embd=384"})
	if err != nil || got.Model.NHidden != 1000 {
		t.Errorf("n_hidden set in an earlier override: %v, n_hidden %d, want 1000", err, got.Model.NHidden)
	}
	// Encoder–decoder: n_dec_layer follows n_layer; arch defaults follow the arch.
	e, err := Override(Seq2SeqReverse().WithDefaults(), []string{"model.n_layer=3"})
	if err != nil || e.Model.NDecLayer != 3 {
		t.Errorf("encdec -set model.n_layer=3: %v, n_dec_layer %d, want 3", err, e.Model.NDecLayer)
	}
	b, err := Override(s, []string{"model.arch=bert"})
	if err != nil || b.Model.Activation != "gelu_tanh" || b.Model.LayerNormEps != 1e-12 {
		t.Errorf("-set model.arch=bert: %v, activation %q eps %g, want BERT's gelu_tanh, 1e-12", err, b.Model.Activation, b.Model.LayerNormEps)
	}
}

func TestMarshalAnnotatedMarksDerivedAndParses(t *testing.T) {
	s, err := Override(Default(), []string{"train.lr_decay_iters=999"})
	if err != nil {
		t.Fatal(err)
	}
	out := string(s.MarshalAnnotated())
	for _, want := range []string{
		`"n_hidden": 256,  # derived: 4·n_embd`,
		`"min_workers": 1,  # derived: tp`,
		`"activation": "gelu",  # derived: the arch's`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("annotated spec lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"lr_decay_iters": 999,  # derived`) || !strings.Contains(out, `"lr_decay_iters": 999`) {
		t.Errorf("explicit lr_decay_iters marked derived:\n%s", out)
	}
	back, err := Parse([]byte(out))
	if err != nil {
		t.Fatalf("annotated spec does not parse: %v\n%s", err, out)
	}
	if string(back.Marshal()) != string(s.Marshal()) {
		t.Errorf("annotated spec parses to a different spec:\n%s\nvs\n%s", back.Marshal(), s.Marshal())
	}
}

func TestModelHash(t *testing.T) {
	a := Default()
	b := a
	b.Model.NLayer++
	c := a
	c.Model = a.Model.WithDefaults()
	if a.ModelHash() == b.ModelHash() || a.ModelHash() != c.ModelHash() {
		t.Fatal("hash does not track the config")
	}
}

// train.precision defaults to fp32, takes bf16, and rejects anything else
// naming the field.
func TestPrecisionField(t *testing.T) {
	s, err := Preset("sort")
	if err != nil {
		t.Fatal(err)
	}
	if s.WithDefaults().Train.Precision != PrecisionFP32 {
		t.Fatalf("default precision %q, want fp32", s.WithDefaults().Train.Precision)
	}
	if _, err := Override(s, []string{"train.precision=bf16"}); err != nil {
		t.Fatalf("bf16: %v", err)
	}
	bad := s
	bad.Train.Precision = "fp16"
	err = bad.WithDefaults().Validate()
	if err == nil || !strings.Contains(err.Error(), "train.precision") {
		t.Fatalf("precision fp16: error %v, want one naming train.precision", err)
	}
}

func TestUnknownFieldNamedWithPathAndSuggestion(t *testing.T) {
	for doc, want := range map[string]string{
		"name: x\nmodel: {arch: gpt, n_embdd: 64}\n": "job spec: model.n_embdd: unknown field, did you mean model.n_embd?",
		"nmae: x\n":              "job spec: nmae: unknown field, did you mean name?",
		"train: {zzzzzzzz: 1}\n": "job spec: train.zzzzzzzz: unknown field; check its spelling against `ringctl train --print-spec`",
	} {
		_, err := Parse([]byte(doc))
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", doc, err, want)
		}
	}
	s, err := Preset("sort")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Override(s, []string{"model.n_embdd=64"}); err == nil || !strings.Contains(err.Error(), "model.n_embdd: unknown field, did you mean model.n_embd?") {
		t.Errorf("override: %v", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	s, err := Override(Default(), []string{"parallel.wait_timeout=90m"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Parallel.WaitTimeoutDuration(); got != 90*time.Minute {
		t.Errorf("wait_timeout 90m parsed as %v", got)
	}
	if got := Default().Parallel.WaitTimeoutDuration(); got != 0 {
		t.Errorf("default wait_timeout %v, want 0 (wait forever)", got)
	}
}

// train.recompute: none by default; mlp and block for GPT; refused for other
// architectures and for unknown values, naming the field.
func TestRecomputeField(t *testing.T) {
	s, err := Preset("babygpt")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.WithDefaults().Train.Recompute; got != RecomputeNone {
		t.Fatalf("default recompute %q, want none", got)
	}
	for _, v := range []string{"mlp", "block"} {
		if _, err := Override(s, []string{"train.recompute=" + v}); err != nil {
			t.Fatalf("gpt, recompute %s: %v", v, err)
		}
	}
	if _, err := Override(s, []string{"train.recompute=blocks"}); err == nil || !strings.Contains(err.Error(), "train.recompute") {
		t.Fatalf("recompute blocks: %v, want an error naming train.recompute", err)
	}
	bert, err := Preset("bert-mlm")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Override(bert, []string{"train.recompute=block"}); err == nil || !strings.Contains(err.Error(), "train.recompute: block is implemented for model.arch gpt") {
		t.Fatalf("bert, recompute block: %v", err)
	}
	// encdec trains task reverse or tokens, never text
	ed, err := Preset("seq2seq-reverse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Override(ed, []string{"data.task=tokens", "data.path=/some/dir"}); err != nil {
		t.Fatalf("encdec on task tokens: %v", err)
	}
	if _, err := Override(ed, []string{"data.task=text"}); err == nil || !strings.Contains(err.Error(), "model.arch encdec trains task reverse or tokens") {
		t.Fatalf("encdec on task text: %v", err)
	}
}
