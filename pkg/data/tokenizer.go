package data

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/tokenizer"
)

// Tokenizer maps text to token ids and back: the char-level Vocab of text
// tasks, or a byte-level BPE (pkg/tokenizer) for token-file datasets.
// Checkpoints and saved models carry it as its MarshalJSON.
type Tokenizer interface {
	Size() int                           // number of ids
	Encode(text string) ([]int32, error) // ids of text
	Decode(ids []int32) string           // text of ids
	Special(name string) (int32, bool)   // id of a special token, e.g. [MASK]
	MarshalJSON() ([]byte, error)        // the saved form, read by ParseTokenizer
	Save(path string) error              // the saved form, to a file
}

var (
	_ Tokenizer = (*Vocab)(nil)
	_ Tokenizer = (*tokenizer.BPE)(nil)
)

// ParseTokenizer reads a saved tokenizer: a char vocabulary
// ({"kind":"char",…}) or a Hugging Face tokenizer.json (a BPE "model").
func ParseTokenizer(b []byte) (Tokenizer, error) {
	var probe struct {
		Kind  *string         `json:"kind"`
		Model json.RawMessage `json:"model"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&probe); err != nil {
		return nil, fmt.Errorf("tokenizer: not a JSON object: %w", err)
	}
	switch {
	case probe.Kind != nil:
		return ParseVocab(b)
	case probe.Model != nil:
		return tokenizer.ParseHF(b)
	}
	return nil, fmt.Errorf("tokenizer: neither a char vocabulary (\"kind\") nor a tokenizer.json (\"model\")")
}

// TokenizerFile is the file name a saved model directory keeps t in:
// tokenizer.json for BPE (as Hugging Face names it), vocab.json for chars.
func TokenizerFile(t Tokenizer) string {
	if _, ok := t.(*tokenizer.BPE); ok {
		return "tokenizer.json"
	}
	return "vocab.json"
}
