package train

import (
	"context"
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Eval is a loss estimate: the mean over train.eval_iters fixed evaluation
// batches of each split (the same batches at every evaluation, keyed by
// train.eval_seed), with the accuracy of the argmax prediction on the
// counted targets (for BERT: the masked-token accuracy).
type Eval struct {
	Iter                       int
	TrainLoss, ValLoss         float64
	TrainAccuracy, ValAccuracy float64
	HeldOut                    *data.Score // synthetic tasks, when scored
}

// Evaluate estimates train and val loss and accuracy without dropout.
func (tr *Trainer) Evaluate(ctx context.Context) (Eval, error) {
	ev := Eval{Iter: tr.iter}
	var err error
	if ev.TrainLoss, ev.TrainAccuracy, err = tr.estimate(ctx, data.Train, true); err != nil {
		return ev, err
	}
	if ev.ValLoss, ev.ValAccuracy, err = tr.estimate(ctx, data.Val, true); err != nil {
		return ev, err
	}
	return ev, nil
}

// ValLoss estimates the val loss alone, as Evaluate does. It works on a
// tensor-parallel shard (every TP rank must call it at the same step: the
// forward pass all-reduces), where the accuracy would need whole logits.
func (tr *Trainer) ValLoss(ctx context.Context) (float64, error) {
	loss, _, err := tr.estimate(ctx, data.Val, false)
	return loss, err
}

func (tr *Trainer) estimate(ctx context.Context, split data.Split, accuracy bool) (loss, acc float64, err error) {
	rows, iters := tr.Spec.Train.BatchSize, tr.Spec.Train.EvalIters
	type result struct {
		loss             float64
		correct, counted int
		err              error
	}
	res := make([]result, iters)
	// Lanes take every n-th batch; the sums run in batch order, so the
	// estimate does not depend on the number of lanes.
	n := max(1, min(tr.Lanes(), iters))
	work := func(i int) {
		m, b := tr.Model, &tr.batch
		if i > 0 {
			m, b = tr.lanes[i-1].model, &tr.lanes[i-1].batch
		}
		for k := i; k < iters; k += n {
			r := &res[k]
			if r.err = tr.Data.FillEval(b, split, k, rows, 0, rows); r.err != nil {
				return
			}
			var l float32
			if l, r.err = m.Forward(ctx, b, false); r.err != nil {
				return
			}
			r.loss = float64(l)
			if accuracy {
				r.correct, r.counted = tr.countCorrect(m, b)
			}
		}
	}
	if n == 1 {
		work(0)
	} else {
		tr.crew.run(n, work)
	}
	var correct, counted int
	for k, r := range res {
		if r.err != nil {
			return 0, 0, fmt.Errorf("eval %s batch %d: %w", split, k, r.err)
		}
		loss += r.loss
		correct += r.correct
		counted += r.counted
	}
	loss /= float64(iters)
	if counted > 0 {
		acc = float64(correct) / float64(counted)
	}
	return loss, acc, nil
}

// countCorrect compares the argmax of the last Forward's logits with the
// batch's non-ignored targets. BERT's logits hold one row per counted target
// in (b,t) order; the other architectures have one row per position.
func (tr *Trainer) countCorrect(m model.Model, b *model.Batch) (correct, counted int) {
	logits := m.Logits()
	V := tr.Spec.Model.VocabSize
	row := 0
	for i, y := range b.Targets {
		if y == model.IgnoreIndex {
			continue
		}
		r := i
		if tr.Spec.Model.Arch == model.ArchBERT {
			r = row
		}
		row++
		if argmax(logits[r*V:(r+1)*V]) == int(y) {
			correct++
		}
	}
	return correct, row
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// ScoreHeldOut decodes every held-out problem of a synthetic task greedily
// and counts exact matches. It returns nil for datasets without held-out
// problems (text).
func (tr *Trainer) ScoreHeldOut(ctx context.Context) (*data.Score, error) {
	h := tr.Data.HeldOut()
	if h == nil {
		return nil, nil
	}
	gen, err := Decoder(ctx, tr.Model)
	if err != nil {
		return nil, err
	}
	sc, err := h.Score(gen, 250)
	if err != nil {
		return nil, fmt.Errorf("held-out: %w", err)
	}
	return &sc, nil
}

// Decoder returns a batched greedy decoder for m: GPT continues each prompt
// (prompts of one call must have equal length); the encoder–decoder decodes
// each source from [BOS] and stops a row at [EOS].
func Decoder(ctx context.Context, m model.Model) (data.Generate, error) {
	switch m := m.(type) {
	case *model.GPT:
		return func(prompts [][]int32, maxNew int) ([][]int32, error) {
			P := len(prompts[0])
			flat := make([]int32, 0, len(prompts)*P)
			for i, p := range prompts {
				if len(p) != P {
					return nil, fmt.Errorf("prompt %d has %d tokens, want %d (all prompts of a call must have equal length)", i, len(p), P)
				}
				flat = append(flat, p...)
			}
			out, err := m.Greedy(ctx, flat, len(prompts), maxNew)
			if err != nil {
				return nil, err
			}
			res := make([][]int32, len(prompts))
			for i := range res {
				res[i] = out[i*maxNew : (i+1)*maxNew]
			}
			return res, nil
		}, nil
	case *model.EncDec:
		return func(prompts [][]int32, maxNew int) ([][]int32, error) {
			B, S := len(prompts), 0
			for _, p := range prompts {
				S = max(S, len(p))
			}
			src := make([]int32, B*S)
			valid := make([]uint8, B*S)
			for i, p := range prompts {
				for j := range S {
					if j < len(p) {
						src[i*S+j], valid[i*S+j] = p[j], 1
					} else {
						src[i*S+j] = data.ReversePad
					}
				}
			}
			out := make([]int32, B*maxNew)
			if err := m.GreedyDecode(ctx, src, B, S, valid, data.ReverseBOS, data.ReverseEOS, maxNew, out); err != nil {
				return nil, err
			}
			res := make([][]int32, B)
			for i := range res {
				res[i] = out[i*maxNew : (i+1)*maxNew]
			}
			return res, nil
		}, nil
	}
	return nil, fmt.Errorf("model %T has no greedy decoder", m)
}
