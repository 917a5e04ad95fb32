package data

import (
	"fmt"
	"slices"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// sortTask is minGPT's sort demo: length digits from {0..digits-1}; the
// sequence is inp ++ sorted(inp), x = seq[:-1], y = seq[1:] with the first
// length-1 targets ignored (loss only on the answer). A problem is held out
// (test) iff the FNV-1a hash of its digits is 0 mod 4 (minGPT uses Python's
// hash of the pickled list the same way); training rows come only from the
// other problems.
type sortTask struct {
	length, digits int
}

// sortIsTest is the train/test split of sort problems.
func sortIsTest(inp []int32) bool {
	h := uint64(14695981039346656037) // FNV-1a 64
	for _, d := range inp {
		h ^= uint64(d)
		h *= 1099511628211
	}
	return h%4 == 0
}

// enumerateLimit bounds the problem spaces that are enumerated exhaustively.
const enumerateLimit = 1 << 20

func (d *Dataset) openSort(spec jobspec.DataSpec, blockSize, nHeld int) error {
	L, D := spec.Length, spec.Digits
	if L < 2 {
		return fmt.Errorf("data.length: sort needs length ≥ 2, got %d", L)
	}
	if D < 2 || D > 10 {
		return fmt.Errorf("data.digits: sort needs digits in [2, 10], got %d", D)
	}
	if need := 2*L - 1; blockSize < need {
		return fmt.Errorf("model.block_size: sort with length %d needs block_size ≥ %d (2·length-1), got %d", L, need, blockSize)
	}
	v, err := NewVocab("0123456789"[:D])
	if err != nil {
		return err
	}
	t := &sortTask{length: L, digits: D}
	test, err := sortHeldOut(L, D, nHeld, d.evalSeed)
	if err != nil {
		return err
	}
	h := &HeldOut{Arch: model.ArchGPT, MaxNew: L, EOS: -1}
	for _, p := range test {
		ans := slices.Clone(p)
		slices.Sort(ans)
		h.Problems = append(h.Problems, Problem{Prompt: p, Answer: ans})
	}
	d.task, d.vocab, d.heldOut = t, v, h
	d.info.T = 2*L - 1
	return nil
}

// sortHeldOut picks up to n distinct test problems: all of them, or a fixed
// random subset keyed by evalSeed, when the space is small enough to
// enumerate; otherwise n distinct random test problems.
func sortHeldOut(L, D, n int, evalSeed int64) ([][]int32, error) {
	space := 1
	for range L {
		if space > enumerateLimit/D {
			space = enumerateLimit + 1
			break
		}
		space *= D
	}
	rng := newSeqRNG(evalSeed, streamHeldOut)
	if space > enumerateLimit {
		seen := map[string]bool{}
		var out [][]int32
		for tries := 0; len(out) < n && tries < 1000*n; tries++ {
			p := make([]int32, L)
			for j := range p {
				p[j] = int32(rng.IntN(D))
			}
			if !sortIsTest(p) || seen[fmt.Sprint(p)] {
				continue
			}
			seen[fmt.Sprint(p)] = true
			out = append(out, p)
		}
		return out, nil
	}
	var test [][]int32
	nTrain := 0
	p := make([]int32, L)
	for range space {
		if sortIsTest(p) {
			test = append(test, slices.Clone(p))
		} else {
			nTrain++
		}
		for j := L - 1; j >= 0; j-- { // odometer
			p[j]++
			if int(p[j]) < D {
				break
			}
			p[j] = 0
		}
	}
	if len(test) == 0 || nTrain == 0 {
		return nil, fmt.Errorf("data.length: sort with length %d and digits %d has %d training and %d held-out problems; make length or digits larger",
			L, D, nTrain, len(test))
	}
	if len(test) > n {
		rng.Shuffle(len(test), func(i, j int) { test[i], test[j] = test[j], test[i] })
		test = test[:n]
	}
	return test, nil
}

func (t *sortTask) dims(batchKey, int) (int, int) { return 2*t.length - 1, 0 }

func (t *sortTask) fields() fields { return fields{} }

func (t *sortTask) count(_ batchKey, globalRows int) int { return globalRows * t.length }

func (t *sortTask) row(b *model.Batch, r int, rng rowRNG, s Split) {
	L, T := t.length, 2*t.length-1
	x, y := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T]
	inp := x[:L]
	for {
		for j := range inp {
			inp[j] = int32(rng.intN(t.digits))
		}
		if sortIsTest(inp) == (s == Val) {
			break
		}
	}
	// seq = inp ++ sorted(inp) (2L); x = seq[:2L-1]; y = seq[1:] with y[:L-1] ignored
	sorted := y[L-1:]
	copy(sorted, inp)
	slices.Sort(sorted)
	copy(x[L:], sorted[:L-1])
	for j := range L - 1 {
		y[j] = model.IgnoreIndex
	}
}
