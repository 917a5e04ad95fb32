package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// pair is two adjacent token ids.
type pair [2]int32

// merge says what a pair becomes and how early it applies (lower first).
type merge struct {
	rank int32
	id   int32
}

// BPE is a byte-level BPE tokenizer. Ids are dense in [0, Size()).
type BPE struct {
	tokens    [][]byte         // id → raw bytes (nil for a special token)
	ids       map[string]int32 // raw bytes → id (ordinary tokens)
	byteID    [256]int32       // the id of each single byte
	merges    map[pair]merge
	mergeList []pair // merges in rank order (what merges.txt lists)

	specials  []string // in id order
	specialID map[string]int32
	pattern   Pattern // pre-tokenization
}

// Pattern is how t cuts text into pieces before merging.
func (t *BPE) Pattern() Pattern { return t.pattern }

// WithPattern is t pre-tokenizing with p instead: a tiktoken rank file does
// not say its pattern (cl100k_base needs PatternCL100K; Load infers it from
// the file's name).
func (t *BPE) WithPattern(p Pattern) *BPE {
	c := *t
	c.pattern = p
	return &c
}

// newBPE checks and indexes a vocabulary. tokens[id] are raw bytes (nil for
// ids that are specials); merges lists pairs in rank order, or is nil for a
// rank-only (tiktoken) vocabulary, whose merges are derived from the ranks.
func newBPE(tokens [][]byte, merges []pair, specials map[string]int32) (*BPE, error) {
	t := &BPE{tokens: tokens, ids: make(map[string]int32, len(tokens)), merges: map[pair]merge{}, specialID: map[string]int32{}}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for id, b := range tokens {
		if b == nil {
			continue
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("token %d is empty", id)
		}
		if prev, dup := t.ids[string(b)]; dup {
			return nil, fmt.Errorf("tokens %d and %d are both %q", prev, id, b)
		}
		t.ids[string(b)] = int32(id)
		if len(b) == 1 {
			t.byteID[b[0]] = int32(id)
		}
	}
	for b, id := range t.byteID {
		if id < 0 {
			return nil, fmt.Errorf("byte 0x%02x has no token; a byte-level BPE vocabulary needs all 256", b)
		}
	}
	names := make([]string, 0, len(specials))
	for name, id := range specials {
		if name == "" {
			return nil, fmt.Errorf("a special token has an empty name")
		}
		if id < 0 || int(id) >= len(tokens) || tokens[id] != nil {
			return nil, fmt.Errorf("special token %q has id %d, which is out of range or an ordinary token's", name, id)
		}
		t.specialID[name] = id
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int { return int(specials[a] - specials[b]) })
	t.specials = names
	for id, b := range tokens {
		if b == nil && !slices.ContainsFunc(names, func(n string) bool { return specials[n] == int32(id) }) {
			return nil, fmt.Errorf("id %d has no token (ids must be dense)", id)
		}
	}
	if merges == nil { // tiktoken: any split of a token into two tokens merges to it, at its rank
		for id, b := range tokens {
			for k := 1; k < len(b); k++ {
				l, okL := t.ids[string(b[:k])]
				r, okR := t.ids[string(b[k:])]
				if okL && okR {
					t.merges[pair{l, r}] = merge{rank: int32(id), id: int32(id)}
				}
			}
		}
		return t, nil
	}
	for rank, p := range merges {
		for _, id := range p {
			if id < 0 || int(id) >= len(tokens) || tokens[id] == nil {
				return nil, fmt.Errorf("merge %d: id %d is not an ordinary token", rank, id)
			}
		}
		joined := string(tokens[p[0]]) + string(tokens[p[1]])
		id, ok := t.ids[joined]
		if !ok {
			return nil, fmt.Errorf("merge %d (%q %q): the vocabulary has no token %q", rank, spellBytes(tokens[p[0]]), spellBytes(tokens[p[1]]), spellBytes([]byte(joined)))
		}
		if _, dup := t.merges[p]; dup {
			return nil, fmt.Errorf("merge %d (%q %q) is listed twice", rank, spellBytes(tokens[p[0]]), spellBytes(tokens[p[1]]))
		}
		t.merges[p] = merge{rank: int32(rank), id: id}
	}
	t.mergeList = slices.Clone(merges)
	return t, nil
}

// Size is the number of ids, ordinary and special.
func (t *BPE) Size() int { return len(t.tokens) }

// Special returns the id of a special token such as "<|endoftext|>".
func (t *BPE) Special(name string) (int32, bool) {
	id, ok := t.specialID[name]
	return id, ok
}

// Specials lists the special tokens in id order.
func (t *BPE) Specials() []string { return slices.Clone(t.specials) }

// NumMerges is the number of merge rules (0 for a rank-only vocabulary).
func (t *BPE) NumMerges() int { return len(t.mergeList) }

// Encode returns the ids of text: special tokens where their names appear
// verbatim, byte-level BPE over GPT-2's pre-tokens elsewhere. It never fails
// (every byte has a token); the error is for the common tokenizer interface.
func (t *BPE) Encode(text string) ([]int32, error) {
	return t.AppendEncode(nil, text, nil), nil
}

// Cache memoises pre-token encodings for one goroutine: corpora repeat their
// words, so encoding a file with a Cache is several times faster.
type Cache map[string][]int32

// AppendEncode appends the ids of text to dst. A non-nil cache is read and
// filled (it must not be shared between goroutines).
func (t *BPE) AppendEncode(dst []int32, text string, cache Cache) []int32 {
	for len(text) > 0 {
		at, name := t.nextSpecial(text)
		plain := text[:at]
		for i := 0; i < len(plain); {
			n := t.pattern.matchAt(plain, i)
			piece := plain[i : i+n]
			i += n
			if cache != nil {
				if ids, ok := cache[piece]; ok {
					dst = append(dst, ids...)
					continue
				}
			}
			m := len(dst)
			dst = t.encodePiece(dst, piece)
			if cache != nil && len(cache) < 1<<20 {
				cache[strings.Clone(piece)] = slices.Clone(dst[m:]) // a key must not pin the caller's text
			}
		}
		if name == "" {
			break
		}
		dst = append(dst, t.specialID[name])
		text = text[at+len(name):]
	}
	return dst
}

// nextSpecial finds the first (longest at that place) special token in text;
// it returns len(text), "" when there is none.
func (t *BPE) nextSpecial(text string) (int, string) {
	best, name := len(text), ""
	for _, s := range t.specials {
		if i := strings.Index(text, s); i >= 0 && (i < best || i == best && len(s) > len(name)) {
			best, name = i, s
		}
	}
	return best, name
}

// encodePiece appends the BPE of one pre-token: start from its bytes and
// apply the lowest-ranked merge among adjacent pairs until none applies
// (openai/gpt-2 encoder.py bpe(); tiktoken's _byte_pair_merge for ranks).
func (t *BPE) encodePiece(dst []int32, piece string) []int32 {
	n := len(dst)
	for i := 0; i < len(piece); i++ {
		dst = append(dst, t.byteID[piece[i]])
	}
	parts := dst[n:]
	for len(parts) > 1 {
		best, at := merge{rank: -1}, -1
		for i := 0; i+1 < len(parts); i++ {
			if m, ok := t.merges[pair{parts[i], parts[i+1]}]; ok && (at < 0 || m.rank < best.rank) {
				best, at = m, i
			}
		}
		if at < 0 {
			break
		}
		if t.mergeList == nil { // tiktoken merges one place at a time
			parts[at] = best.id
			parts = append(parts[:at+1], parts[at+2:]...)
			continue
		}
		// GPT-2 merges every non-overlapping occurrence, left to right
		p := pair{parts[at], parts[at+1]}
		w := at
		for r := at; r < len(parts); {
			if r+1 < len(parts) && parts[r] == p[0] && parts[r+1] == p[1] {
				parts[w] = best.id
				r += 2
			} else {
				parts[w] = parts[r]
				r++
			}
			w++
		}
		parts = parts[:w]
	}
	return dst[:n+len(parts)]
}

// DecodeBytes returns the raw bytes of ids; specials are their names, and
// ids out of range are skipped.
func (t *BPE) DecodeBytes(ids []int32) []byte {
	var out []byte
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) {
			continue
		}
		if b := t.tokens[id]; b != nil {
			out = append(out, b...)
		} else {
			out = append(out, t.specials[slices.IndexFunc(t.specials, func(s string) bool { return t.specialID[s] == id })]...)
		}
	}
	return out
}

// Decode returns the text of ids. A sequence that ends (or breaks) inside a
// UTF-8 character shows U+FFFD there, as Python's errors="replace" does.
func (t *BPE) Decode(ids []int32) string {
	b := t.DecodeBytes(ids)
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Token returns the GPT-2 spelling of an id (a special token's name).
func (t *BPE) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	if t.tokens[id] == nil {
		return string(t.DecodeBytes([]int32{id}))
	}
	return spellBytes(t.tokens[id])
}
