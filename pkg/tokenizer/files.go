package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MarshalJSON writes the tokenizer as a Hugging Face tokenizer.json: a BPE
// model, the ByteLevel pre-tokenizer and decoder, the specials as added
// tokens. transformers' PreTrainedTokenizerFast and tokenizers'
// Tokenizer.from_file read it. A rank-only vocabulary gets its merges
// listed in rank order.
func (t *BPE) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[`)
	for i, s := range t.specials {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(s)
		fmt.Fprintf(&b, `{"id":%d,"content":%s,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}`, t.specialID[s], name)
	}
	b.WriteString(`],"normalizer":null,`)
	if t.pattern == PatternGPT2 {
		b.WriteString(`"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},`)
	} else { // as Hugging Face writes tiktoken's patterns: a Split, then ByteLevel without its own regex
		re, _ := json.Marshal(t.pattern.Regex())
		fmt.Fprintf(&b, `"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":%s},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]},`, re)
	}
	b.WriteString(`"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},`)
	b.WriteString(`"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{`)
	first := true
	for id, tok := range t.tokens {
		if tok == nil {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(spellBytes(tok))
		fmt.Fprintf(&b, "%s:%d", k, id)
	}
	b.WriteString(`},"merges":[`)
	for i, p := range t.orderedMerges() {
		if i > 0 {
			b.WriteByte(',')
		}
		l, _ := json.Marshal(spellBytes(t.tokens[p[0]]))
		r, _ := json.Marshal(spellBytes(t.tokens[p[1]]))
		fmt.Fprintf(&b, "[%s,%s]", l, r)
	}
	b.WriteString(`]}}`)
	return b.Bytes(), nil
}

// orderedMerges is mergeList, or for a rank-only vocabulary the merge that
// makes each multi-byte token, in rank order: its bytes merged by the ranks
// below its own until two parts are left (as transformers converts tiktoken
// files). A token that does not end as two parts has no merge.
func (t *BPE) orderedMerges() []pair {
	if t.mergeList != nil {
		return t.mergeList
	}
	var out []pair
	for id, tok := range t.tokens {
		if len(tok) < 2 {
			continue
		}
		parts := make([]int32, len(tok))
		for i, c := range tok {
			parts[i] = t.byteID[c]
		}
		for len(parts) > 2 {
			best, at := int32(-1), -1
			for i := 0; i+1 < len(parts); i++ {
				if m, ok := t.merges[pair{parts[i], parts[i+1]}]; ok && m.rank < int32(id) && (at < 0 || m.rank < best) {
					best, at = m.rank, i
				}
			}
			if at < 0 {
				break
			}
			parts[at] = best
			parts = append(parts[:at+1], parts[at+2:]...)
		}
		if len(parts) == 2 {
			out = append(out, pair{parts[0], parts[1]})
		}
	}
	return out
}

// hfFile is the part of tokenizer.json that matters here.
type hfFile struct {
	AddedTokens  []addedToken    `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer *hfPreTokenizer `json:"pre_tokenizer"`
	Model        *struct {
		Type   string            `json:"type"`
		Vocab  map[string]int32  `json:"vocab"`
		Merges []json.RawMessage `json:"merges"`
	} `json:"model"`
}

type hfPreTokenizer struct {
	Type      string `json:"type"`
	AddPrefix bool   `json:"add_prefix_space"`
	UseRegex  *bool  `json:"use_regex"`
	// Split
	Pattern *struct {
		Regex string `json:"Regex"`
	} `json:"pattern"`
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// Sequence
	PreTokenizers []hfPreTokenizer `json:"pretokenizers"`
}

// pattern is the Pattern p describes: GPT-2's ByteLevel, or a Split on one
// of the known regexes followed by a ByteLevel that adds no regex of its
// own (how Hugging Face writes cl100k_base).
func (p *hfPreTokenizer) pattern() (Pattern, error) {
	if p == nil {
		return PatternGPT2, errors.New("no pre_tokenizer")
	}
	byteLevel := func(q hfPreTokenizer, regex bool) bool {
		return q.Type == "ByteLevel" && !q.AddPrefix && (q.UseRegex == nil || *q.UseRegex == regex)
	}
	if byteLevel(*p, true) {
		return PatternGPT2, nil
	}
	if s := p.PreTokenizers; p.Type == "Sequence" && len(s) == 2 && s[0].Type == "Split" && s[0].Pattern != nil &&
		s[0].Behavior == "Isolated" && !s[0].Invert && byteLevel(s[1], false) && s[1].UseRegex != nil {
		for _, pat := range []Pattern{PatternGPT2, PatternCL100K} {
			if s[0].Pattern.Regex == pat.Regex() {
				return pat, nil
			}
		}
		return PatternGPT2, fmt.Errorf("Split regex %.80q is none of GPT-2's or cl100k_base's", s[0].Pattern.Regex)
	}
	return PatternGPT2, fmt.Errorf("type %s", p.Type)
}

type addedToken struct {
	ID      int32  `json:"id"`
	Content string `json:"content"`
}

// ParseHF reads a Hugging Face tokenizer.json with a byte-level BPE model.
// Other models (WordPiece, Unigram), normalizers and pre-tokenizers other
// than ByteLevel with GPT-2's regex are refused: they would encode
// differently from the file's own library.
func ParseHF(data []byte) (*BPE, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if f.Model == nil || f.Model.Type != "BPE" {
		typ := "none"
		if f.Model != nil {
			typ = f.Model.Type
		}
		return nil, fmt.Errorf("tokenizer.json: model.type is %q; only byte-level BPE (GPT-2 style) is supported", typ)
	}
	if n := strings.TrimSpace(string(f.Normalizer)); n != "" && n != "null" {
		return nil, fmt.Errorf("tokenizer.json: has a normalizer (%.60s); only GPT-2-style tokenizers without one are supported", n)
	}
	pat, err := f.PreTokenizer.pattern()
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: pre_tokenizer must be ByteLevel with use_regex true and add_prefix_space false (GPT-2's), or a Split on cl100k_base's regex then ByteLevel without one; got %v", err)
	}
	merges := make([][2]string, 0, len(f.Model.Merges))
	for i, raw := range f.Model.Merges {
		var two []string
		if err := json.Unmarshal(raw, &two); err == nil && len(two) == 2 {
			merges = append(merges, [2]string{two[0], two[1]})
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("tokenizer.json: merge %d is neither \"a b\" nor [\"a\",\"b\"]", i)
		}
		l, r, ok := strings.Cut(s, " ")
		if !ok {
			return nil, fmt.Errorf("tokenizer.json: merge %d (%q) has no space", i, s)
		}
		merges = append(merges, [2]string{l, r})
	}
	t, err := fromVocab(f.Model.Vocab, merges, f.AddedTokens)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t.pattern = pat
	return t, nil
}

// fromVocab builds a BPE from GPT-2-spelled tokens, merges in rank order
// and added tokens (specials; one also in the vocab becomes special there).
func fromVocab(vocab map[string]int32, mergeNames [][2]string, added []addedToken) (*BPE, error) {
	size := 0
	for _, id := range vocab {
		size = max(size, int(id)+1)
	}
	specials := map[string]int32{}
	for _, a := range added {
		if _, inVocab := vocab[a.Content]; inVocab {
			continue // GPT-2's <|endoftext|> is also in the vocab: treat it as special below
		}
		specials[a.Content] = a.ID
		size = max(size, int(a.ID)+1)
	}
	tokens := make([][]byte, size)
	for s, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("token %q has negative id %d", s, id)
		}
		b, ok := unspell(s)
		if !ok {
			return nil, fmt.Errorf("token %q (id %d) is not spelled in GPT-2's byte runes; not a byte-level BPE", s, id)
		}
		if tokens[id] != nil {
			return nil, fmt.Errorf("id %d is given to two tokens", id)
		}
		tokens[id] = b
	}
	for _, a := range added { // added tokens in the vocab become specials
		if id, inVocab := vocab[a.Content]; inVocab {
			tokens[id] = nil
			specials[a.Content] = id
		}
	}
	merges := make([]pair, 0, len(mergeNames))
	for i, m := range mergeNames {
		p, err := mergePair(vocab, m[0], m[1])
		if err != nil {
			return nil, fmt.Errorf("merge %d: %w", i, err)
		}
		merges = append(merges, p)
	}
	return newBPE(tokens, merges, specials)
}

func mergePair(vocab map[string]int32, l, r string) (pair, error) {
	a, okA := vocab[l]
	b, okB := vocab[r]
	if !okA || !okB {
		return pair{}, fmt.Errorf("%q or %q is not in the vocabulary", l, r)
	}
	return pair{a, b}, nil
}

// ParseGPT2 reads GPT-2's original files: vocab.json (token → id) and
// merges.txt (a "#version" line, then one "a b" merge per line). GPT-2's
// <|endoftext|> and any token in specials become special tokens.
func ParseGPT2(vocabJSON, mergesTxt []byte, specials ...string) (*BPE, error) {
	var vocab map[string]int32
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(mergesTxt))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); l != "" && !strings.HasPrefix(l, "#version") {
			lines = append(lines, l)
		}
	}
	merges := make([][2]string, 0, len(lines))
	for i, l := range lines {
		a, b, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("merges.txt: merge %d (%q) has no space", i, l)
		}
		merges = append(merges, [2]string{a, b})
	}
	var added []addedToken
	for _, s := range append([]string{"<|endoftext|>"}, specials...) {
		if id, ok := vocab[s]; ok {
			added = append(added, addedToken{ID: id, Content: s})
		}
	}
	t, err := fromVocab(vocab, merges, added)
	if err != nil {
		return nil, fmt.Errorf("vocab.json + merges.txt: %w", err)
	}
	return t, nil
}

// ParseTiktoken reads a tiktoken rank file ("<base64 token> <rank>" per
// line, as gpt2.tiktoken, r50k_base.tiktoken); ranks become ids and the
// merge order. Specials (name → id, e.g. {"<|endoftext|>": 50256}) are
// added, as tiktoken's Encoding(special_tokens=…) does. Pre-tokenization
// is GPT-2's pattern, which is right for gpt2/r50k/p50k; for cl100k_base use
// WithPattern(PatternCL100K) (Load does, from the file's name).
func ParseTiktoken(data []byte, specials map[string]int32) (*BPE, error) {
	var tokens [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		tok, rankS, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("tiktoken line %d: want \"<base64> <rank>\", got %.40q", line, l)
		}
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			return nil, fmt.Errorf("tiktoken line %d: token: %w", line, err)
		}
		rank, err := strconv.Atoi(rankS)
		if err != nil || rank < 0 || rank > 1<<24 {
			return nil, fmt.Errorf("tiktoken line %d: rank %q is not a small non-negative integer", line, rankS)
		}
		for len(tokens) <= rank {
			tokens = append(tokens, nil)
		}
		if tokens[rank] != nil {
			return nil, fmt.Errorf("tiktoken line %d: rank %d is given twice", line, rank)
		}
		tokens[rank] = b
	}
	for name, id := range specials {
		for len(tokens) <= int(id) {
			tokens = append(tokens, nil)
		}
		if id >= 0 && tokens[id] != nil {
			return nil, fmt.Errorf("tiktoken: special token %q has id %d, an ordinary token's rank", name, id)
		}
	}
	t, err := newBPE(tokens, nil, specials)
	if err != nil {
		return nil, fmt.Errorf("tiktoken: %w", err)
	}
	return t, nil
}

// MarshalTiktoken writes the tiktoken rank file of the ordinary tokens.
func (t *BPE) MarshalTiktoken() []byte {
	var b bytes.Buffer
	for id, tok := range t.tokens {
		if tok != nil {
			fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString(tok), id)
		}
	}
	return b.Bytes()
}

// MarshalGPT2 writes vocab.json and merges.txt (specials go in vocab.json).
func (t *BPE) MarshalGPT2() (vocabJSON, mergesTxt []byte) {
	vocab := make(map[string]int32, len(t.tokens))
	for id, tok := range t.tokens {
		if tok != nil {
			vocab[spellBytes(tok)] = int32(id)
		}
	}
	for s, id := range t.specialID {
		vocab[s] = id
	}
	vocabJSON, _ = json.Marshal(vocab)
	var m bytes.Buffer
	m.WriteString("#version: 0.2\n")
	for _, p := range t.orderedMerges() {
		fmt.Fprintf(&m, "%s %s\n", spellBytes(t.tokens[p[0]]), spellBytes(t.tokens[p[1]]))
	}
	return vocabJSON, m.Bytes()
}

// Load reads a tokenizer file by its form: a tokenizer.json (or any JSON
// with a "model"), a .tiktoken rank file, or a GPT-2 vocab.json with
// merges.txt beside it.
func Load(path string) (*BPE, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var t *BPE
	switch {
	case strings.HasSuffix(path, ".tiktoken"):
		// The rank file does not say its pattern; tiktoken's own names do.
		var p Pattern
		if p, err = ParsePattern(strings.SplitN(filepath.Base(path), ".", 2)[0]); err != nil && strings.HasPrefix(filepath.Base(path), "o200k") {
			return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
		} else if err != nil {
			p = PatternGPT2 // gpt2.tiktoken, r50k_base, p50k_base, or one of ours
		}
		if t, err = ParseTiktoken(data, nil); err == nil {
			t = t.WithPattern(p)
		}
	case filepath.Base(path) == "vocab.json":
		mpath := filepath.Join(filepath.Dir(path), "merges.txt")
		m, rerr := os.ReadFile(mpath)
		if rerr != nil {
			return nil, fmt.Errorf("load tokenizer %s: GPT-2's vocab.json needs merges.txt beside it: %w", path, rerr)
		}
		t, err = ParseGPT2(data, m)
	default:
		t, err = ParseHF(data)
	}
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Save writes the tokenizer.json form to path (temp file + rename).
func (t *BPE) Save(path string) error {
	b, _ := t.MarshalJSON()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save tokenizer %s: %w", path, werr)
	}
	return nil
}
