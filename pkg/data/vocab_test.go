package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVocabRoundTrip(t *testing.T) {
	text := "hello, wörld!\nzebra"
	v, err := NewVocab(text, PadToken, CLSToken, SEPToken, MaskToken)
	if err != nil {
		t.Fatal(err)
	}
	if v.NChars() != 15 || v.Size() != 19 {
		t.Fatalf("NChars, Size = %d, %d; want 15, 19", v.NChars(), v.Size())
	}
	ids, err := v.Encode(text)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Decode(ids); got != text {
		t.Errorf("Decode(Encode(x)) = %q, want %q", got, text)
	}
	for i := 1; i < v.NChars(); i++ {
		if v.chars[i-1] >= v.chars[i] {
			t.Fatalf("chars not sorted at %d", i)
		}
	}
	if id, ok := v.Special(MaskToken); !ok || id != 18 {
		t.Errorf("Special([MASK]) = %d, %v; want 18", id, ok)
	}
	if _, ok := v.Special(BOSToken); ok {
		t.Error("Special([BOS]) found in a vocab without it")
	}
	if got := v.Decode([]int32{15, 18, -1, 99}); got != "[PAD][MASK]\uFFFD\uFFFD" {
		t.Errorf("Decode(specials, out of range) = %q", got)
	}
	if _, err := v.Encode("q"); err == nil || !strings.Contains(err.Error(), `'q'`) {
		t.Errorf("Encode of an unknown char: err = %v", err)
	}
	if _, err := NewVocab("a\xffb"); err == nil {
		t.Error("NewVocab accepted invalid UTF-8")
	}
}

func TestVocabSaveLoad(t *testing.T) {
	v, err := NewVocab("the quick brown fox", PadToken, BOSToken, EOSToken)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vocab.json")
	if err := v.Save(path); err != nil {
		t.Fatal(err)
	}
	w, err := LoadVocab(path)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Equal(w) {
		t.Errorf("loaded vocab differs: %s", w.Decode([]int32{0, 1, 2}))
	}
	ids, _ := v.Encode("fox")
	if got := w.Decode(ids); got != "fox" {
		t.Errorf("loaded vocab decodes %q", got)
	}
	noSpecials, _ := NewVocab("ab")
	b, _ := noSpecials.MarshalJSON()
	if string(b) != `{"kind":"char","chars":"ab","specials":[]}` {
		t.Errorf("MarshalJSON = %s", b)
	}
	if _, err := LoadVocab(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadVocab of a missing file succeeded")
	}
}

func TestParseVocabRejects(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"not json", `{"kind":`, "not a vocab JSON object"},
		{"unknown kind", `{"kind":"bpe","chars":"ab","specials":[]}`, `kind "bpe" is unknown`},
		{"unknown field", `{"kind":"char","chars":"ab","specials":[],"merges":[]}`, "unknown field"},
		{"unsorted", `{"kind":"char","chars":"ba","specials":[]}`, "sorted and distinct"},
		{"repeated char", `{"kind":"char","chars":"aab","specials":[]}`, "sorted and distinct"},
		{"repeated special", `{"kind":"char","chars":"ab","specials":["[PAD]","[PAD]"]}`, "specials must be distinct"},
		{"empty special", `{"kind":"char","chars":"ab","specials":[""]}`, "specials must be distinct"},
		{"trailing", `{"kind":"char","chars":"ab","specials":[]} {}`, "trailing data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseVocab([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseVocab(%s) error = %v, want one containing %q", c.doc, err, c.want)
			}
		})
	}
}

// shakespearePath is ../shared/data/tinyshakespeare.txt relative to the repo root.
const shakespearePath = "../../../shared/data/tinyshakespeare.txt"

func TestTinyShakespeareVocab(t *testing.T) {
	if _, err := os.Stat(shakespearePath); err != nil {
		t.Skipf("tiny shakespeare not present: %v", err)
	}
	text, sum, err := ReadText(shakespearePath, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 64 {
		t.Errorf("sha256 %q is not 64 hex digits", sum)
	}
	v, err := NewVocab(text, PadToken, CLSToken, SEPToken, MaskToken)
	if err != nil {
		t.Fatal(err)
	}
	if v.NChars() != 65 || v.Size() != 69 {
		t.Errorf("NChars, Size = %d, %d; want 65, 69 (nanoGPT shakespeare_char + 4 specials)", v.NChars(), v.Size())
	}
	for name, want := range map[string]int32{PadToken: 65, CLSToken: 66, SEPToken: 67, MaskToken: 68} {
		if id, _ := v.Special(name); id != want {
			t.Errorf("%s = %d, want %d (bert_mlm.py)", name, id, want)
		}
	}
	// nanoGPT's stoi: '\n' is 0, ' ' is 1, 'A' is 13, 'a' is 39
	ids, _ := v.Encode("\n Aa")
	if ids[0] != 0 || ids[1] != 1 || ids[2] != 13 || ids[3] != 39 {
		t.Errorf("ids of \"\\n Aa\" = %v, want [0 1 13 39]", ids)
	}
}

func FuzzParseVocab(f *testing.F) {
	f.Add([]byte(`{"kind":"char","chars":"\n !abc","specials":["[PAD]","[MASK]"]}`))
	f.Add([]byte(`{"kind":"char","chars":"","specials":[]}`))
	f.Add([]byte(`{"kind":"char","chars":"ba","specials":null}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		v, err := ParseVocab(doc)
		if err != nil {
			return
		}
		b, err := v.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		w, err := ParseVocab(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !v.Equal(w) {
			t.Fatalf("%s changed on a round trip", doc)
		}
		ids := make([]int32, v.Size())
		for i := range ids {
			ids[i] = int32(i)
		}
		if text := v.Decode(ids[:v.NChars()]); text != string(v.chars) {
			t.Fatalf("Decode of all chars = %q", text)
		}
	})
}
