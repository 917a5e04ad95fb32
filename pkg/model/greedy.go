package model

import (
	"context"
	"fmt"
)

// GreedyDecode generates up to maxLen tokens per source row, starting every
// row from bos and always taking the most likely next token; a row stops at
// its first eos (which is emitted). src is (B,S) with srcValid (B,S) (nil: all
// real). out (B,maxLen) receives the generated tokens; positions after a
// row's eos are set to IgnoreIndex. The source is encoded once; each step
// re-runs the decoder over the whole prefix (no key/value cache). The model's
// activation buffers are reused, so a Backward after GreedyDecode panics until
// the next Forward.
func (m *EncDec) GreedyDecode(ctx context.Context, src []int32, B, S int, srcValid []uint8, bos, eos int32, maxLen int, out []int32) error {
	s := &m.s
	s.ready = false
	V := m.cfg.VocabSize
	switch {
	case B < 1 || S < 1 || S > m.cfg.BlockSize:
		return fmt.Errorf("encdec: GreedyDecode needs B ≥ 1 and S in [1,%d] (block_size), got B=%d S=%d", m.cfg.BlockSize, B, S)
	case maxLen < 1 || maxLen > m.cfg.BlockSize:
		return fmt.Errorf("encdec: GreedyDecode maxLen %d out of range [1,%d] (block_size: the decoder sees up to maxLen positions)", maxLen, m.cfg.BlockSize)
	case bos < 0 || int(bos) >= V || eos < 0 || int(eos) >= V:
		return fmt.Errorf("encdec: GreedyDecode bos %d / eos %d outside the vocabulary [0,%d)", bos, eos, V)
	case len(out) != B*maxLen:
		return fmt.Errorf("encdec: GreedyDecode out has %d entries, want B·maxLen = %d", len(out), B*maxLen)
	}
	if err := ValidateIDs("Src", src, B, S, V, false); err != nil {
		return err
	}
	if err := ValidateMask("SrcValid", srcValid, B, S); err != nil {
		return err
	}
	s.reserve(m.cfg, &m.tp, B, S, maxLen)
	s.B, s.S = B, S
	s.ys, s.done = growI32(s.ys, B*maxLen), growI32(s.done, B)
	copy(s.src, src)
	s.srcValid, s.keyValid = srcValid, nil
	mem, err := m.encode(ctx, B, S, false)
	if err != nil {
		return fmt.Errorf("encdec: GreedyDecode: %w", err)
	}
	for i := range out {
		out[i] = IgnoreIndex
	}
	clear(s.done)
	for b := 0; b < B; b++ {
		s.ys[b*maxLen] = bos
	}
	for step := 0; step < maxLen; step++ {
		T := step + 1
		for b := 0; b < B; b++ { // the prefixes as a (B,T) batch
			copy(s.tokens[b*T:(b+1)*T], s.ys[b*maxLen:b*maxLen+T])
		}
		s.T = T
		if err := m.decode(ctx, mem, B, S, T, false); err != nil {
			return fmt.Errorf("encdec: GreedyDecode: %w", err)
		}
		finished := true
		for b := 0; b < B; b++ {
			if s.done[b] != 0 { // keep the finished row's prefix valid; its logits are unused
				if step+1 < maxLen {
					s.ys[b*maxLen+step+1] = eos
				}
				continue
			}
			row := s.logits[((b+1)*T-1)*V : (b+1)*T*V]
			next := int32(argmax(row))
			out[b*maxLen+step] = next
			if step+1 < maxLen {
				s.ys[b*maxLen+step+1] = next
			}
			if next == eos {
				s.done[b] = 1
			} else {
				finished = false
			}
		}
		if finished {
			break
		}
	}
	return nil
}
