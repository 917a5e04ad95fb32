package data

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// TrainFraction is nanoGPT's split: the first 90 % of the token ids train.
const TrainFraction = 0.9

// textTask samples windows of a char-level text (nanoGPT's get_batch), or
// BERT masked-LM rows of it (bert_mlm.py) when bert is set: one segment,
// [CLS] x [SEP], or with segments (token files) BERT's sentence pairs,
// [CLS] A [SEP] B [SEP], A and B consecutive spans of the stream.
type textTask struct {
	trainSeq, valSeq tokenSeq
	T                int
	bert             bool
	segments         bool // BERT: two segments per row
	nChars           int
	p                int // BERT: masked positions per row
	cls, sep         int32
	mask             int32
}

// ReadText reads a UTF-8 text file and returns its contents and the hex
// sha256 of its bytes. A non-empty wantSHA256 must match.
func ReadText(path, wantSHA256 string) (text, sum string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("data.path: cannot read the text file: %w", err)
	}
	h := sha256.Sum256(b)
	sum = hex.EncodeToString(h[:])
	if wantSHA256 != "" && wantSHA256 != sum {
		return "", "", fmt.Errorf("data.sha256: %s has sha256 %s but the spec expects %s; fix data.path or data.sha256",
			path, sum, wantSHA256)
	}
	return string(b), sum, nil
}

func (d *Dataset) openText(spec jobspec.DataSpec, arch model.Arch, blockSize int) error {
	text, sum, err := ReadText(spec.Path, spec.SHA256)
	if err != nil {
		return err
	}
	t := &textTask{T: blockSize, bert: arch == model.ArchBERT}
	var specials []string
	if t.bert {
		specials = []string{PadToken, CLSToken, SEPToken, MaskToken}
	}
	v, err := NewVocab(text, specials...)
	if err != nil {
		return fmt.Errorf("data.path: %s: %w", spec.Path, err)
	}
	ids, err := v.Encode(text)
	if err != nil {
		return fmt.Errorf("data.path: %s: %w", spec.Path, err)
	}
	n := int(float64(len(ids)) * TrainFraction)
	t.trainSeq, t.valSeq = memSeq(ids[:n]), memSeq(ids[n:])
	t.nChars = v.NChars()
	if err := t.checkFit(spec.Path, blockSize); err != nil {
		return err
	}
	if t.bert {
		if err := t.setMask(spec.MaskProb, blockSize); err != nil {
			return err
		}
		t.cls, _ = v.Special(CLSToken)
		t.sep, _ = v.Special(SEPToken)
		t.mask, _ = v.Special(MaskToken)
	}
	d.task, d.vocab = t, v
	d.info.T, d.info.SHA256, d.info.TrainTokens, d.info.ValTokens = blockSize, sum, t.trainSeq.Len(), t.valSeq.Len()
	return nil
}

// checkFit refuses a block_size that a split cannot hold one window of.
func (t *textTask) checkFit(path string, blockSize int) error {
	for _, s := range []struct {
		name string
		seq  tokenSeq
	}{{"train", t.trainSeq}, {"val", t.valSeq}} {
		if max := s.seq.Len() - 1; blockSize > max {
			return fmt.Errorf("model.block_size: %d is too long for the %s split of %s (%d tokens); max allowed is %d",
				blockSize, s.name, path, s.seq.Len(), max)
		}
	}
	return nil
}

// setMask checks BERT's row shape and mask_prob and sets the masked count.
func (t *textTask) setMask(mp float64, blockSize int) error {
	switch {
	case t.segments && blockSize < 5:
		return fmt.Errorf("model.block_size: BERT rows of token files are [CLS] A [SEP] B [SEP] with A and B non-empty, so block_size must be ≥ 5, got %d", blockSize)
	case blockSize < 3:
		return fmt.Errorf("model.block_size: BERT rows are [CLS] + tokens + [SEP], so block_size must be ≥ 3, got %d", blockSize)
	}
	if mp <= 0 || mp >= 1 {
		return fmt.Errorf("data.mask_prob: must be in (0, 1), got %g", mp)
	}
	t.p = maskCount(t.contentLen(blockSize), mp)
	return nil
}

// contentLen is the number of stream tokens in a BERT row of T positions.
func (t *textTask) contentLen(T int) int {
	if t.segments {
		return T - 3 // [CLS] A [SEP] B [SEP]
	}
	return T - 2 // [CLS] x [SEP]
}

// maskCount is BERT's number of chosen positions: max(1, round(L·p)), with
// Python's round-half-to-even.
func maskCount(L int, p float64) int {
	return max(1, int(math.RoundToEven(float64(L)*p)))
}

func (t *textTask) split(s Split) tokenSeq {
	if s == Val {
		return t.valSeq
	}
	return t.trainSeq
}

func (t *textTask) dims(batchKey, int) (int, int) { return t.T, 0 }

func (t *textTask) fields() fields { return fields{tokenTypes: t.bert} }

func (t *textTask) count(_ batchKey, globalRows int) int {
	if t.bert {
		return globalRows * t.p
	}
	return globalRows * t.T
}

func (t *textTask) row(b *model.Batch, r int, rng rowRNG, s Split) {
	data, T := t.split(s), t.T
	x, y := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T]
	if !t.bert {
		// nanoGPT get_batch: i in [0, len-T), x = data[i:i+T], y = data[i+1:i+T+1]
		i := rng.intN(data.Len() - T)
		data.Read(x, i)
		data.Read(y, i+1)
		return
	}
	// bert_mlm.py: [CLS] + L chars + [SEP]; exactly p of the L char positions
	// chosen uniformly without replacement; each chosen becomes [MASK] (0.8),
	// a random char (0.1) or stays (0.1); targets only at chosen positions.
	// With segments the L stream tokens are split at a uniform point into A
	// (≥ 1) and B (≥ 1): [CLS] A [SEP] B [SEP], token type 0 through the
	// first [SEP] and 1 after it (BERT's sentence pairs; B is always A's
	// continuation: no next-sentence task, as RoBERTa).
	L := t.contentLen(T)
	i := rng.intN(data.Len() - L)
	a := L // stream tokens before the middle [SEP]
	x[0], x[T-1] = t.cls, t.sep
	if t.segments {
		a = 1 + rng.intN(L-1)
		data.Read(x[1:1+a], i)
		x[1+a] = t.sep
		data.Read(x[2+a:T-1], i+a)
		types := b.TokenTypes[r*T : (r+1)*T]
		for j := 2 + a; j < T; j++ {
			types[j] = 1
		}
	} else {
		data.Read(x[1:T-1], i)
	}
	for j := range y {
		y[j] = model.IgnoreIndex
	}
	need := t.p
	for j := 0; j < L && need > 0; j++ {
		// selection sampling (Knuth's Algorithm S): choose position j with
		// probability need/(L-j); every p-subset is equally likely.
		if rng.intN(L-j) >= need {
			continue
		}
		need--
		pos := 1 + j
		if j >= a {
			pos++ // past the middle [SEP]
		}
		y[pos] = x[pos]
		u := rng.float64()
		rc := int32(rng.intN(t.nChars))
		switch {
		case u < 0.8:
			x[pos] = t.mask
		case u < 0.9:
			x[pos] = rc
		}
	}
}
