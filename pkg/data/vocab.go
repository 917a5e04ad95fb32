package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// Special token names, appended after the characters when a task asks for them.
const (
	PadToken  = "[PAD]"
	CLSToken  = "[CLS]"
	SEPToken  = "[SEP]"
	MaskToken = "[MASK]"
	BOSToken  = "[BOS]"
	EOSToken  = "[EOS]"
)

// vocabKind is the only tokenizer kind so far.
const vocabKind = "char"

// Vocab is a char-level tokenizer: ids 0..NChars()-1 are the characters in
// sorted order (nanoGPT's shakespeare_char), followed by the special tokens
// in the order given. It is immutable once built.
type Vocab struct {
	chars    []rune
	specials []string
	index    map[rune]int32
}

// NewVocab builds a vocabulary from the sorted set of characters of text,
// followed by specials.
func NewVocab(text string, specials ...string) (*Vocab, error) {
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("text is not valid UTF-8")
	}
	seen := map[rune]bool{}
	for _, r := range text {
		seen[r] = true
	}
	chars := make([]rune, 0, len(seen))
	for r := range seen {
		chars = append(chars, r)
	}
	slices.Sort(chars)
	return newVocab(chars, specials)
}

func newVocab(chars []rune, specials []string) (*Vocab, error) {
	v := &Vocab{chars: chars, specials: slices.Clone(specials), index: make(map[rune]int32, len(chars))}
	for i, r := range chars {
		if i > 0 && chars[i-1] >= r {
			return nil, fmt.Errorf("vocab chars must be sorted and distinct; %q at index %d", r, i)
		}
		v.index[r] = int32(i)
	}
	seen := map[string]bool{}
	for _, s := range specials {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("vocab specials must be distinct and non-empty; got %q", specials)
		}
		seen[s] = true
	}
	return v, nil
}

// Size is the number of token ids: characters plus specials.
func (v *Vocab) Size() int { return len(v.chars) + len(v.specials) }

// NChars is the number of character tokens (ids 0..NChars()-1).
func (v *Vocab) NChars() int { return len(v.chars) }

// Special returns the id of a special token, e.g. Special(MaskToken).
func (v *Vocab) Special(name string) (int32, bool) {
	i := slices.Index(v.specials, name)
	if i < 0 {
		return 0, false
	}
	return int32(len(v.chars) + i), true
}

// Encode maps each character of s to its id.
func (v *Vocab) Encode(s string) ([]int32, error) {
	ids := make([]int32, 0, len(s))
	for i, r := range s {
		id, ok := v.index[r]
		if !ok {
			return nil, fmt.Errorf("character %q at byte %d is not in the vocabulary", r, i)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Decode maps ids back to text; specials render as their names and ids out of
// range as U+FFFD.
func (v *Vocab) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id >= 0 && int(id) < len(v.chars):
			b.WriteRune(v.chars[id])
		case int(id) >= len(v.chars) && int(id) < v.Size():
			b.WriteString(v.specials[int(id)-len(v.chars)])
		default:
			b.WriteRune(utf8.RuneError)
		}
	}
	return b.String()
}

// vocabJSON is the saved form of a Vocab.
type vocabJSON struct {
	Kind     string   `json:"kind"`
	Chars    string   `json:"chars"`
	Specials []string `json:"specials"`
}

// MarshalJSON renders {"kind":"char","chars":...,"specials":[...]}.
func (v *Vocab) MarshalJSON() ([]byte, error) {
	sp := v.specials
	if sp == nil {
		sp = []string{}
	}
	return json.Marshal(vocabJSON{Kind: vocabKind, Chars: string(v.chars), Specials: sp})
}

// ParseVocab reads a vocabulary saved by MarshalJSON or Save, rejecting
// unknown kinds and fields, unsorted or repeated characters and repeated specials.
func ParseVocab(b []byte) (*Vocab, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j vocabJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("vocab: not a vocab JSON object: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("vocab: trailing data after the JSON object")
	}
	if j.Kind != vocabKind {
		return nil, fmt.Errorf("vocab: kind %q is unknown; want %q", j.Kind, vocabKind)
	}
	if !utf8.ValidString(j.Chars) {
		return nil, fmt.Errorf("vocab: chars is not valid UTF-8")
	}
	v, err := newVocab([]rune(j.Chars), j.Specials)
	if err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	return v, nil
}

// Save writes the vocabulary as JSON to path (temp file + rename).
func (v *Vocab) Save(path string) error {
	b, err := v.MarshalJSON()
	if err != nil {
		return fmt.Errorf("vocab: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("vocab: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("vocab: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("vocab: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("vocab: %w", err)
	}
	return nil
}

// LoadVocab reads a vocabulary written by Save.
func LoadVocab(path string) (*Vocab, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	v, err := ParseVocab(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// Equal reports whether two vocabularies assign the same ids.
func (v *Vocab) Equal(w *Vocab) bool {
	return slices.Equal(v.chars, w.chars) && slices.Equal(v.specials, w.specials)
}
