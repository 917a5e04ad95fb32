package data

import (
	"math"
	"os"
	"slices"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// digitString renders ids of a digit vocabulary.
func digitString(ids []int32) string {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte('0' + id)
	}
	return string(b)
}

func row32(s []int32, r, T int) []int32 { return s[r*T : (r+1)*T] }

func TestSortRowsAndSplit(t *testing.T) {
	d := open(t, preset(t, "sort"))
	L := 6
	if d.Info().T != 2*L-1 || d.Tokenizer().Size() != 3 {
		t.Fatalf("Info %+v, vocab %d", d.Info(), d.Tokenizer().Size())
	}
	for _, split := range []Split{Train, Val} {
		for step := int64(0); step < 20; step++ {
			b := fill(t, d, split, step, 64, 0, 64)
			for r := range b.B {
				x, y := row32(b.Tokens, r, b.T), row32(b.Targets, r, b.T)
				inp := x[:L]
				want := slices.Clone(inp)
				slices.Sort(want)
				if !slices.Equal(y[L-1:], want) || !slices.Equal(x[L:], want[:L-1]) {
					t.Fatalf("row x=%v y=%v is not inp ++ sorted(inp)", x, y)
				}
				for _, v := range y[:L-1] {
					if v != model.IgnoreIndex {
						t.Fatalf("row y=%v: prompt targets are not ignored", y)
					}
				}
				if sortIsTest(inp) != (split == Val) {
					t.Fatalf("%v row %s is on the wrong side of the split", split, digitString(inp))
				}
			}
		}
	}
	h := d.HeldOut()
	// 3^6 = 729 problems, about a quarter held out; preset asks for 5000 → all of them
	if n := len(h.Problems); n < 120 || n > 250 {
		t.Errorf("%d held-out sort problems; want about 729/4", n)
	}
	seen := map[string]bool{}
	for _, p := range h.Problems {
		if !sortIsTest(p.Prompt) || seen[digitString(p.Prompt)] {
			t.Fatalf("held-out problem %s is a training problem or repeated", digitString(p.Prompt))
		}
		seen[digitString(p.Prompt)] = true
	}
}

func TestAddRowsAndSplit(t *testing.T) {
	d := open(t, preset(t, "add")) // 2 digits
	n := 2
	h := d.HeldOut()
	if len(h.Problems) != 500 { // min(20 % of 10^4, 500)
		t.Fatalf("%d held-out add problems, want 500", len(h.Problems))
	}
	held := map[string]bool{}
	for _, p := range h.Problems {
		held[digitString(p.Prompt)] = true
	}
	if len(held) != 500 {
		t.Fatalf("held-out problems repeat: %d distinct", len(held))
	}
	num := func(ds []int32) int {
		v := 0
		for _, x := range ds {
			v = v*10 + int(x)
		}
		return v
	}
	for _, split := range []Split{Train, Val} {
		for step := int64(0); step < 30; step++ {
			b := fill(t, d, split, step, 64, 0, 64)
			for r := range b.B {
				x, y := row32(b.Tokens, r, b.T), row32(b.Targets, r, b.T)
				seq := append(slices.Clone(x), y[len(y)-1])
				a, bb := num(seq[:n]), num(seq[n:2*n])
				c := slices.Clone(seq[2*n:])
				slices.Reverse(c)
				if num(c) != a+bb {
					t.Fatalf("row %v: %d + %d != %d", seq, a, bb, num(c))
				}
				if !slices.Equal(y[2*n-1:], seq[2*n:]) || slices.ContainsFunc(y[:2*n-1], func(v int32) bool { return v != model.IgnoreIndex }) {
					t.Fatalf("targets %v of %v", y, seq)
				}
				if held[digitString(seq[:2*n])] != (split == Val) {
					t.Fatalf("%v row %v is on the wrong side of the split", split, seq)
				}
			}
		}
	}
	for _, p := range h.Problems[:5] {
		c := slices.Clone(p.Answer)
		slices.Reverse(c)
		if num(c) != num(p.Prompt[:n])+num(p.Prompt[n:]) {
			t.Errorf("held-out problem %v → %v is wrong", p.Prompt, p.Answer)
		}
	}
}

func TestReverseRowsAndSplit(t *testing.T) {
	d := open(t, preset(t, "seq2seq-reverse"))
	if d.Tokenizer().Size() != 13 || d.Tokenizer().Decode([]int32{10, 11, 12}) != "[PAD][BOS][EOS]" {
		t.Fatalf("reverse vocab: %d tokens", d.Tokenizer().Size())
	}
	h := d.HeldOut()
	if len(h.Problems) != 1000 {
		t.Fatalf("%d held-out strings, want 1000", len(h.Problems))
	}
	held := map[string]bool{}
	for _, p := range h.Problems {
		held[digitString(p.Prompt)] = true
	}
	lens := map[int]int{}
	for _, split := range []Split{Train, Val} {
		for step := int64(0); step < 40; step++ {
			b := fill(t, d, split, step, 32, 0, 32)
			maxN := 0
			for r := range b.B {
				src, sv := row32(b.Src, r, b.S), b.SrcValid[r*b.S:(r+1)*b.S]
				x, y, kv := row32(b.Tokens, r, b.T), row32(b.Targets, r, b.T), b.KeyValid[r*b.T:(r+1)*b.T]
				n := slices.Index(sv, 0)
				if n < 0 {
					n = b.S
				}
				maxN = max(maxN, n)
				lens[n]++
				str := src[:n]
				rev := slices.Clone(str)
				slices.Reverse(rev)
				for j := range b.S {
					if (j < n) != (sv[j] == 1) || (j >= n && src[j] != ReversePad) {
						t.Fatalf("src %v valid %v", src, sv)
					}
				}
				if x[0] != ReverseBOS || !slices.Equal(x[1:n+1], rev) || !slices.Equal(y[:n], rev) || y[n] != ReverseEOS {
					t.Fatalf("src %v: x %v y %v", str, x, y)
				}
				for j := n + 1; j < b.T; j++ {
					if x[j] != ReversePad || y[j] != model.IgnoreIndex || kv[j] != 0 {
						t.Fatalf("padding of x %v y %v kv %v", x, y, kv)
					}
				}
				if slices.Contains(kv[:n+1], 0) {
					t.Fatalf("kv %v marks real tokens as padding", kv)
				}
				if held[digitString(str)] != (split == Val) {
					t.Fatalf("%v row %s is on the wrong side of the split", split, digitString(str))
				}
			}
			if b.S != maxN || b.T != maxN+1 {
				t.Fatalf("S=%d T=%d, longest string %d", b.S, b.T, maxN)
			}
		}
	}
	for n := ReverseMinLen; n <= ReverseMaxLen; n++ {
		if lens[n] == 0 {
			t.Errorf("no string of length %d in 2560 rows", n)
		}
	}
	if lens[ReverseMinLen-1] != 0 || lens[ReverseMaxLen+1] != 0 {
		t.Errorf("lengths out of [4,16]: %v", lens)
	}
}

func TestGPTTextWindows(t *testing.T) {
	path := writeText(t, 5000)
	s := preset(t, "babygpt")
	s.Data.Path = path
	d := open(t, s)
	text, _, _ := ReadText(path, "")
	ids, _ := d.Tokenizer().Encode(text)
	info := d.Info()
	if info.TrainTokens != int(float64(len(ids))*0.9) || info.TrainTokens+info.ValTokens != len(ids) {
		t.Fatalf("split %d/%d of %d tokens", info.TrainTokens, info.ValTokens, len(ids))
	}
	train, val := ids[:info.TrainTokens], ids[info.TrainTokens:]
	for _, split := range []Split{Train, Val} {
		data := train
		if split == Val {
			data = val
		}
		b := fill(t, d, split, 3, 20, 0, 20)
		for r := range b.B {
			x, y := row32(b.Tokens, r, b.T), row32(b.Targets, r, b.T)
			found := false
			for i := 0; i+b.T < len(data) && !found; i++ {
				found = slices.Equal(x, data[i:i+b.T]) && slices.Equal(y, data[i+1:i+b.T+1])
			}
			if !found {
				t.Fatalf("%v row %d is not a window data[i:i+T], data[i+1:i+T+1] of its split", split, r)
			}
		}
		if b.KeyValid != nil || b.TokenTypes != nil || b.Src != nil {
			t.Error("GPT batch sets fields GPT does not use")
		}
	}
}

func TestBERTMasking(t *testing.T) {
	path := writeText(t, 30000)
	s := preset(t, "bert-mlm")
	s.Data.Path = path
	d := open(t, s)
	v := d.Tokenizer().(*Vocab)
	cls, _ := v.Special(CLSToken)
	sep, _ := v.Special(SEPToken)
	mask, _ := v.Special(MaskToken)
	const T, L, P = 64, 62, 9 // max(1, round(0.15·62))
	text, _, _ := ReadText(path, "")
	ids, _ := v.Encode(text)
	train := ids[:d.Info().TrainTokens]
	var nMask, nRand, nSame, chosen int
	posCount := make([]int, T)
	for step := int64(0); step < 40; step++ {
		b := fill(t, d, Train, step, 50, 0, 50)
		if b.T != T || len(b.TokenTypes) != b.B*T || slices.ContainsFunc(b.TokenTypes, func(v int32) bool { return v != 0 }) || b.KeyValid != nil {
			t.Fatalf("T=%d TokenTypes %d long, KeyValid nil %v", b.T, len(b.TokenTypes), b.KeyValid == nil)
		}
		for r := range b.B {
			x, y := row32(b.Tokens, r, T), row32(b.Targets, r, T)
			if x[0] != cls || x[T-1] != sep || y[0] != model.IgnoreIndex || y[T-1] != model.IgnoreIndex {
				t.Fatalf("row %v / %v: [CLS]/[SEP] wrong or chosen", x, y)
			}
			// reconstruct the original window and check it is one of the split's
			orig := slices.Clone(x[1 : T-1])
			n := 0
			for j := 1; j < T-1; j++ {
				if y[j] == model.IgnoreIndex {
					continue
				}
				n++
				posCount[j]++
				orig[j-1] = y[j]
				switch {
				case x[j] == mask:
					nMask++
				case x[j] == y[j]:
					nSame++
				default:
					nRand++
					if x[j] < 0 || int(x[j]) >= v.NChars() {
						t.Fatalf("random replacement %d is not a character", x[j])
					}
				}
			}
			if n != P {
				t.Fatalf("row has %d chosen positions, want exactly %d", n, P)
			}
			chosen += n
			found := false
			for i := 0; i+L <= len(train) && !found; i++ {
				found = slices.Equal(orig, train[i:i+L])
			}
			if !found {
				t.Fatalf("row %d: unmasked window is not a window of the train split", r)
			}
		}
	}
	frac := func(k int) float64 { return float64(k) / float64(chosen) }
	// random replacement equals the original with p 1/n_chars and then looks unchanged
	pc := 1 / float64(v.NChars())
	const tol = 0.02 // 18000 chosen positions: 1 sd ≈ 0.003
	if math.Abs(frac(nMask)-0.8) > tol || math.Abs(frac(nRand)-0.1*(1-pc)) > tol || math.Abs(frac(nSame)-(0.1+0.1*pc)) > tol {
		t.Errorf("mask/random/unchanged = %.3f/%.3f/%.3f, want ≈ 0.8/0.1/0.1", frac(nMask), frac(nRand), frac(nSame))
	}
	// positions are uniform: each of the 62 is chosen with p 9/62 (2000 rows: mean 290, sd ≈ 16)
	for j := 1; j < T-1; j++ {
		if posCount[j] < 200 || posCount[j] > 380 {
			t.Errorf("position %d chosen %d times of 2000 rows, want ≈ 290", j, posCount[j])
		}
	}
	if maskCount(62, 0.15) != 9 || maskCount(10, 0.05) != 1 || maskCount(5, 0.5) != 2 {
		t.Errorf("maskCount: %d %d %d", maskCount(62, 0.15), maskCount(10, 0.05), maskCount(5, 0.5))
	}
}

func TestHeldOutScore(t *testing.T) {
	for _, name := range []string{"sort", "add", "seq2seq-reverse"} {
		t.Run(name, func(t *testing.T) {
			d := open(t, preset(t, name))
			h := d.HeldOut()
			answers := map[string][]int32{}
			for _, p := range h.Problems {
				answers[digitString(p.Prompt)] = p.Answer
			}
			oracle := func(eos bool) Generate {
				return func(prompts [][]int32, maxNew int) ([][]int32, error) {
					out := make([][]int32, len(prompts))
					for i, p := range prompts {
						a := slices.Clone(answers[digitString(p)])
						if eos {
							a = append(a, ReverseEOS)
						}
						if len(a) > maxNew {
							t.Fatalf("answer of %d tokens exceeds maxNew %d", len(a), maxNew)
						}
						out[i] = a
					}
					return out, nil
				}
			}
			encdec := h.Arch == model.ArchEncDec
			sc, err := h.Score(oracle(encdec), 64)
			if err != nil {
				t.Fatal(err)
			}
			if sc.N != len(h.Problems) || sc.Accuracy() != 1 {
				t.Errorf("oracle scored %d/%d", sc.Correct, sc.N)
			}
			wrong := func(prompts [][]int32, maxNew int) ([][]int32, error) {
				out, _ := oracle(encdec)(prompts, maxNew)
				for _, o := range out {
					o[0] = (o[0] + 1) % 10
				}
				return out, nil
			}
			if sc, _ := h.Score(wrong, 7); sc.Correct != 0 {
				t.Errorf("wrong first token still scored %d", sc.Correct)
			}
			if encdec {
				if sc, _ := h.Score(oracle(false), 64); sc.Correct != 0 {
					t.Errorf("answers without [EOS] scored %d", sc.Correct)
				}
			}
		})
	}
}

func TestOpenPresetsOnShakespeare(t *testing.T) {
	if _, err := os.Stat(shakespearePath); err != nil {
		t.Skipf("tiny shakespeare not present: %v", err)
	}
	for _, name := range []string{"babygpt", "bert-mlm"} {
		s := preset(t, name)
		s.Data.Path = shakespearePath
		d := open(t, s)
		info := d.Info()
		want := 65
		if name == "bert-mlm" {
			want = 69
		}
		if info.VocabSize != want || info.TrainTokens != 1003854 || info.ValTokens != 111540 {
			t.Errorf("%s: %+v", name, info)
		}
	}
}
