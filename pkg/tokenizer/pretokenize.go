package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// GPT2Pattern is the pre-tokenization regex of GPT-2 (and of Hugging Face's
// ByteLevel pre-tokenizer), also r50k_base's and p50k_base's. Go's regexp
// has no lookahead, so Split implements it by hand; a test checks it
// against Python's regex module.
const GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// CL100KPattern is tiktoken's cl100k_base pattern (GPT-3.5/GPT-4):
// case-insensitive contractions, a letter run with one leading non-letter,
// digits in threes, punctuation runs with their line breaks, and line
// breaks split from the spaces around them. Implemented by hand as
// GPT2Pattern is, and checked against Python's regex module the same way.
const CL100KPattern = `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+`

// Pattern is a pre-tokenization rule: how text is cut into the pieces that
// byte-pair merges stay inside.
type Pattern int

const (
	PatternGPT2   Pattern = iota // GPT2Pattern (gpt2, r50k_base, p50k_base, Hugging Face ByteLevel)
	PatternCL100K                // CL100KPattern (cl100k_base)
)

func (p Pattern) String() string {
	switch p {
	case PatternGPT2:
		return "gpt2"
	case PatternCL100K:
		return "cl100k"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// Regex is the pattern's regular expression, as tiktoken and Hugging Face
// write it.
func (p Pattern) Regex() string {
	if p == PatternCL100K {
		return CL100KPattern
	}
	return GPT2Pattern
}

// ParsePattern parses "gpt2" (or "", "r50k", "p50k") and "cl100k". o200k's
// pattern (case-class letter runs) is not implemented and is refused by
// name rather than encoded with another pattern's pieces.
func ParsePattern(s string) (Pattern, error) {
	switch strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "_base") {
	case "", "gpt2", "r50k", "p50k":
		return PatternGPT2, nil
	case "cl100k":
		return PatternCL100K, nil
	case "o200k":
		return PatternGPT2, fmt.Errorf("pattern o200k: o200k_base's pre-tokenization is not implemented; use gpt2 or cl100k")
	}
	return PatternGPT2, fmt.Errorf("pattern %q: want gpt2 or cl100k", s)
}

// matchAt is the length of p's match at i of s.
func (p Pattern) matchAt(s string, i int) int {
	if p == PatternCL100K {
		return matchAtCL100K(s, i)
	}
	return matchAt(s, i)
}

// Split cuts text into GPT2Pattern's matches, in order; their concatenation
// is text. Bytes that are not valid UTF-8 count as "other" (neither space,
// letter nor digit), as one byte each.
func Split(text string) []string { return PatternGPT2.Split(text) }

// Split cuts text into p's matches, in order; their concatenation is text.
func (p Pattern) Split(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		n := p.matchAt(text, i)
		out = append(out, text[i:i+n])
		i += n
	}
	return out
}

type class uint8

const (
	classOther class = iota
	classSpace
	classLetter
	classNumber
)

// asciiClass is classAt's answer for the 128 ASCII bytes.
var asciiClass = func() (t [128]class) {
	for c := range t {
		switch r := rune(c); {
		case unicode.IsSpace(r):
			t[c] = classSpace
		case unicode.IsLetter(r):
			t[c] = classLetter
		case unicode.IsNumber(r):
			t[c] = classNumber
		}
	}
	return t
}()

func classAt(s string, i int) (class, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && w <= 1:
		return classOther, 1
	case unicode.IsSpace(r):
		return classSpace, w
	case unicode.IsLetter(r):
		return classLetter, w
	case unicode.IsNumber(r):
		return classNumber, w
	}
	return classOther, w
}

// run returns the byte length of the longest run of class c starting at i.
func run(s string, i int, c class) int {
	j := i
	for j < len(s) {
		k, w := classAt(s, j)
		if k != c {
			break
		}
		j += w
	}
	return j - i
}

// matchAt is the length of GPT2Pattern's match at i: the first alternative
// that matches, each greedy, as a backtracking regex engine picks.
func matchAt(s string, i int) int {
	// 's 't 're 've 'm 'll 'd
	if s[i] == '\'' {
		for _, c := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
			if len(s)-i-1 >= len(c) && s[i+1:i+1+len(c)] == c {
				return 1 + len(c)
			}
		}
	}
	// ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
	for _, c := range [...]class{classLetter, classNumber, classOther} {
		j := i
		if s[j] == ' ' && j+1 < len(s) {
			j++
		}
		if k, _ := classAt(s, j); k == c {
			return j - i + run(s, j, c)
		}
		if j != i { // without the optional space (s[i] is a space: never c)
			continue
		}
	}
	return spaceRun(s, i)
}

// spaceRun is `\s+(?!\S)|\s+` at i: a space run not followed by a
// non-space, else all but its last rune when that leaves one, else the
// whole run.
func spaceRun(s string, i int) int {
	n := run(s, i, classSpace)
	if n == 0 { // unreachable: every rune is in one class
		_, w := classAt(s, i)
		return w
	}
	if i+n == len(s) {
		return n
	}
	last := i
	for j := i; j < i+n; {
		_, w := classAt(s, j)
		last = j
		j += w
	}
	if last > i {
		return last - i
	}
	return n
}

// matchAtCL100K is the length of CL100KPattern's match at i, alternative by
// alternative as a backtracking engine tries them. The contractions'
// case-insensitivity is ASCII's (Python's would also fold the rare "ſ" and
// "K" Kelvin sign).
func matchAtCL100K(s string, i int) int {
	// '(?i:[sdmt]|ll|ve|re)
	if s[i] == '\'' && i+1 < len(s) {
		switch c := s[i+1] | 0x20; c {
		case 's', 'd', 'm', 't':
			if s[i+1] < utf8.RuneSelf {
				return 2
			}
		case 'l', 'v', 'r': // ll, ve, re
			want := byte('e')
			if c == 'l' {
				want = 'l'
			}
			if i+2 < len(s) && s[i+1] < utf8.RuneSelf && s[i+2] < utf8.RuneSelf && s[i+2]|0x20 == want {
				return 3
			}
		}
	}
	// [^\r\n\p{L}\p{N}]?+\p{L}+
	c, w := classAt(s, i)
	if c == classLetter {
		return run(s, i, classLetter)
	}
	if c != classNumber && s[i] != '\r' && s[i] != '\n' && i+w < len(s) {
		if next, _ := classAt(s, i+w); next == classLetter {
			return w + run(s, i+w, classLetter)
		}
	}
	// \p{N}{1,3}
	if c == classNumber {
		j := i
		for k := 0; k < 3 && j < len(s); k++ {
			cj, wj := classAt(s, j)
			if cj != classNumber {
				break
			}
			j += wj
		}
		return j - i
	}
	// ` ?[^\s\p{L}\p{N}]++[\r\n]*`
	j := i
	if s[j] == ' ' && j+1 < len(s) {
		j++
	}
	if cj, _ := classAt(s, j); cj == classOther {
		j += run(s, j, classOther)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j - i
	}
	// `\s*[\r\n]`: the space run up to and including its last line break
	n := run(s, i, classSpace)
	for k := i + n - 1; k >= i; k-- {
		if s[k] == '\r' || s[k] == '\n' {
			return k + 1 - i
		}
	}
	return spaceRun(s, i)
}
