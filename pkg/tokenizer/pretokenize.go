package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// GPT2Pattern is the pre-tokenization regex of GPT-2 (and of Hugging Face's
// ByteLevel pre-tokenizer). Go's regexp has no lookahead, so Split
// implements it by hand; a test checks it against Python's regex module.
const GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// Split cuts text into GPT2Pattern's matches, in order; their concatenation
// is text. Bytes that are not valid UTF-8 count as "other" (neither space,
// letter nor digit), as one byte each.
func Split(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		n := matchAt(text, i)
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
	// `\s+(?!\S)` then `\s+`: a space run not followed by a non-space, else
	// all but its last rune when that leaves one, else the whole run.
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
