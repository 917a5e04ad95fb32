package data

import (
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// addTask is minGPT's adder: two n-digit numbers a, b; tokens are the digits
// of a and b (zero padded) followed by the n+1 digits of c = a+b reversed;
// x = seq[:-1], y = seq[1:] with the first 2n-1 targets ignored. The test
// set is a fixed random subset of all problems, min(20 %, 500) of them as in
// minGPT, drawn from train.eval_seed; training rows never come from it.
type addTask struct {
	n      int    // digits per operand
	num    uint64 // 10^(2n) problems, problem idx = a·10^n + b
	pow    uint64 // 10^n
	test   []uint64
	isTest map[uint64]struct{}
}

func (d *Dataset) openAdd(spec jobspec.DataSpec, blockSize, nHeld int) error {
	n := spec.Digits
	if n < 1 || n > 9 {
		return fmt.Errorf("data.digits: add needs digits in [1, 9], got %d", n)
	}
	if need := 3 * n; blockSize < need {
		return fmt.Errorf("model.block_size: add with %d digits needs block_size ≥ %d (3·digits), got %d", n, need, blockSize)
	}
	v, err := NewVocab("0123456789")
	if err != nil {
		return err
	}
	t := &addTask{n: n, pow: 1}
	for range n {
		t.pow *= 10
	}
	t.num = t.pow * t.pow
	nTest := min(t.num/5, 500)
	rng := newSeqRNG(d.evalSeed, streamHeldOut)
	t.isTest = make(map[uint64]struct{}, nTest)
	for uint64(len(t.test)) < nTest {
		idx := rng.Uint64N(t.num)
		if _, dup := t.isTest[idx]; dup {
			continue
		}
		t.isTest[idx] = struct{}{}
		t.test = append(t.test, idx)
	}
	h := &HeldOut{Arch: model.ArchGPT, MaxNew: n + 1, EOS: -1}
	for _, idx := range t.test[:min(len(t.test), nHeld)] {
		seq := make([]int32, 3*n+1)
		t.render(seq, idx)
		h.Problems = append(h.Problems, Problem{Prompt: seq[:2*n], Answer: seq[2*n:]})
	}
	d.task, d.vocab, d.heldOut = t, v, h
	d.info.T = 3 * n
	return nil
}

// render writes the 3n+1 tokens of problem idx into seq.
func (t *addTask) render(seq []int32, idx uint64) {
	n := t.n
	a, b := idx/t.pow, idx%t.pow
	c := a + b
	for j := n - 1; j >= 0; j-- {
		seq[j], seq[n+j] = int32(a%10), int32(b%10)
		a, b = a/10, b/10
	}
	for j := range n + 1 { // c's digits, least significant first
		seq[2*n+j] = int32(c % 10)
		c /= 10
	}
}

func (t *addTask) dims(batchKey, int) (int, int) { return 3 * t.n, 0 }

func (t *addTask) fields() fields { return fields{} }

func (t *addTask) count(_ batchKey, globalRows int) int { return globalRows * (t.n + 1) }

func (t *addTask) row(b *model.Batch, r int, rng rowRNG, s Split) {
	n, T := t.n, 3*t.n
	var idx uint64
	if s == Val {
		idx = t.test[rng.intN(len(t.test))]
	} else {
		for {
			idx = uint64(rng.intN(int(t.num)))
			if _, held := t.isTest[idx]; !held {
				break
			}
		}
	}
	var buf [3*9 + 1]int32 // digits ≤ 9
	seq := buf[:3*n+1]
	t.render(seq, idx)
	x, y := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T]
	copy(x, seq[:T])
	copy(y, seq[1:])
	for j := range 2*n - 1 {
		y[j] = model.IgnoreIndex
	}
}
