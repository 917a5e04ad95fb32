package tokenizer

// GPT-2 stores tokens as strings in which every byte is one printable rune
// (bytes_to_unicode in openai/gpt-2 encoder.py): printable Latin-1 bytes map
// to themselves, the other 68 to U+0100 upward, so ' ' is 'Ġ' and '\n' 'Ċ'.
// vocab.json, merges.txt and tokenizer.json all spell tokens this way.

// byteRunes is bytes_to_unicode: byteRunes[b] is the rune that spells byte b.
var byteRunes = func() (t [256]rune) {
	n := 0
	for b := 0; b < 256; b++ {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = rune(256 + n)
			n++
		}
	}
	return t
}()

// runeBytes inverts byteRunes.
var runeBytes = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	for b, r := range byteRunes {
		m[r] = byte(b)
	}
	return m
}()

// spellBytes returns the GPT-2 spelling of raw token bytes.
func spellBytes(b []byte) string {
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = byteRunes[c]
	}
	return string(rs)
}

// unspell returns the raw bytes of a GPT-2-spelled token, or false if a rune
// is not one of the 256 byte runes.
func unspell(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := runeBytes[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}
