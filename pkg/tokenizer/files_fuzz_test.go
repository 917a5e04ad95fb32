package tokenizer

import (
	"bytes"
	"context"
	"testing"
)

// FuzzParseFiles feeds arbitrary bytes to the three file parsers (users
// bring these files; a damaged one must be an error, never a panic), and a
// tokenizer that parses must encode and decode without panicking, with
// decode∘encode the identity on a sample. The seeds are the three forms of a
// small trained tokenizer.
func FuzzParseFiles(f *testing.F) {
	tok, err := Train(context.Background(), []string{"the quick brown fox jumps over the lazy dog, the end."},
		TrainOptions{VocabSize: 270, Specials: []string{"<|endoftext|>"}})
	if err != nil {
		f.Fatal(err)
	}
	js, err := tok.MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	vocab, merges := tok.MarshalGPT2()
	f.Add(js, 0)
	f.Add(tok.MarshalTiktoken(), 1)
	f.Add(append(append(vocab, 0), merges...), 2)
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{},"merges":[]}}`), 0)
	f.Fuzz(func(t *testing.T, b []byte, form int) {
		var parsed *BPE
		var err error
		switch ((form % 3) + 3) % 3 {
		case 0:
			parsed, err = ParseHF(b)
		case 1:
			parsed, err = ParseTiktoken(b, map[string]int32{"<|endoftext|>": 100_000})
		case 2:
			v, m, _ := bytes.Cut(b, []byte{0})
			parsed, err = ParseGPT2(v, m, "<|endoftext|>")
		}
		if err != nil {
			return
		}
		const sample = "the lazy fox, 42 times <|endoftext|> the end"
		ids, err := parsed.Encode(sample)
		if err != nil {
			return
		}
		if got := parsed.Decode(ids); got != sample {
			t.Fatalf("a parsed tokenizer decodes %q as %q", sample, got)
		}
	})
}
