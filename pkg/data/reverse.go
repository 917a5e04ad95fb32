package data

import (
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Reverse task constants (../shared/bench/torch/seq2seq_reverse.py).
const (
	ReverseMinLen = 4  // shortest source string
	ReverseMaxLen = 16 // longest source string
	ReversePad    = 10 // [PAD]
	ReverseBOS    = 11 // [BOS]
	ReverseEOS    = 12 // [EOS]
)

// reverseTask is the encoder–decoder digit-reversal task: the source is a
// digit string of uniform length in [4, 16]; the decoder input is [BOS] +
// reversed, the target reversed + [EOS]. A global batch is padded to its
// longest string (S; T = S+1), the same for every data-parallel rank.
// Held-out strings come from a generator keyed by train.eval_seed; a
// training row that draws one is redrawn, as the bench does.
type reverseTask struct {
	held    []revString
	heldSet map[uint64]struct{}
}

// revString is one source string; digits past n are unused.
type revString struct {
	d [ReverseMaxLen]int32
	n int
}

// key identifies a string: its length and its digits as a decimal number.
func (s *revString) key() uint64 {
	k := uint64(s.n)
	for _, v := range s.d[:s.n] {
		k = k*10 + uint64(v)
	}
	return k
}

// draw is the bench's draw_strings for one row: a length, then 16 digits.
func drawRev(rng *rowRNG) revString {
	var s revString
	s.n = ReverseMinLen + rng.intN(ReverseMaxLen-ReverseMinLen+1)
	for j := range s.d {
		s.d[j] = int32(rng.intN(10))
	}
	return s
}

func (d *Dataset) openReverse(blockSize, nHeld int) error {
	if need := ReverseMaxLen + 1; blockSize < need {
		return fmt.Errorf("model.block_size: reverse needs block_size ≥ %d (longest string + [BOS]/[EOS]), got %d", need, blockSize)
	}
	v, err := NewVocab("0123456789", PadToken, BOSToken, EOSToken)
	if err != nil {
		return err
	}
	t := &reverseTask{heldSet: make(map[uint64]struct{}, nHeld)}
	rng := newRowRNG(d.evalSeed, streamHeldOut, Val, 0, 0) // one sequential generator
	h := &HeldOut{Arch: model.ArchEncDec, MaxNew: ReverseMaxLen + 1, EOS: ReverseEOS}
	for range nHeld {
		s := drawRev(&rng)
		t.held = append(t.held, s)
		t.heldSet[s.key()] = struct{}{}
		p := Problem{Prompt: make([]int32, s.n), Answer: make([]int32, s.n)}
		for j := range s.n {
			p.Prompt[j], p.Answer[j] = s.d[j], s.d[s.n-1-j]
		}
		h.Problems = append(h.Problems, p)
	}
	d.task, d.vocab, d.heldOut = t, v, h
	d.info.T, d.info.S = ReverseMaxLen+1, ReverseMaxLen
	return nil
}

// rowString is the source string of one row: training rows redraw held-out
// strings; validation rows are held-out strings.
func (t *reverseTask) rowString(rng *rowRNG, s Split) revString {
	if s == Val {
		return t.held[rng.intN(len(t.held))]
	}
	for {
		str := drawRev(rng)
		if _, held := t.heldSet[str.key()]; !held {
			return str
		}
	}
}

func (t *reverseTask) dims(k batchKey, globalRows int) (int, int) {
	S := 0
	for r := range globalRows {
		rng := k.rng(r)
		S = max(S, t.rowString(&rng, k.split).n)
	}
	return S + 1, S
}

func (t *reverseTask) fields() fields { return fields{keyValid: true, src: true} }

func (t *reverseTask) count(k batchKey, globalRows int) int {
	c := 0
	for r := range globalRows {
		rng := k.rng(r)
		c += t.rowString(&rng, k.split).n + 1 // digits and [EOS]
	}
	return c
}

func (t *reverseTask) row(b *model.Batch, r int, rng rowRNG, s Split) {
	str := t.rowString(&rng, s)
	n, S, T := str.n, b.S, b.T
	src, sv := b.Src[r*S:(r+1)*S], b.SrcValid[r*S:(r+1)*S]
	x, y, kv := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T], b.KeyValid[r*T:(r+1)*T]
	for j := range S {
		if j < n {
			src[j], sv[j] = str.d[j], 1
		} else {
			src[j], sv[j] = ReversePad, 0
		}
	}
	x[0], kv[0] = ReverseBOS, 1
	for j := range T {
		switch {
		case j < n:
			y[j] = str.d[n-1-j]
			x[j+1], kv[j+1] = y[j], 1
		case j == n:
			y[j] = ReverseEOS
		default:
			y[j] = model.IgnoreIndex
			x[j], kv[j] = ReversePad, 0
		}
	}
}
