package model

// IgnoreIndex marks a target position that contributes no loss (PyTorch's ignore_index).
const IgnoreIndex int32 = -1

// Batch is one micro-batch of token ids, the same struct for every
// architecture; fields an architecture does not use stay nil.
//
// Loss normalisation: the loss is Σ(per-target cross-entropy) / LossDenom.
// LossDenom 0 means "the number of non-ignored targets in this batch" (a mean).
// A data-parallel rank holding part of the global batch sets LossDenom to the
// global count (and divides by the number of accumulation steps), so that the
// summed gradients equal the single-process gradient exactly.
type Batch struct {
	B, T int // rows, sequence length of Tokens/Targets

	Tokens  []int32 // (B,T) input ids: GPT/BERT input; encdec decoder input ([BOS] + target)
	Targets []int32 // (B,T) next-token (GPT), original token at masked positions (BERT), decoder target (encdec); IgnoreIndex elsewhere

	// KeyValid marks real tokens (1) versus padding (0) for attention key
	// masking over Tokens (BERT; encdec decoder). nil means all real.
	KeyValid []uint8 // (B,T)

	TokenTypes []int32 // (B,T) BERT segment ids; nil means all 0

	S        int     // encdec source length
	Src      []int32 // (B,S) encdec encoder input
	SrcValid []uint8 // (B,S) 1 = real source token, 0 = padding; nil means all real

	ClassLabels []int32 // (B) BERT [CLS] classification labels; nil: no classification loss

	LossDenom float32 // see above; 0 = mean over non-ignored targets of this batch
}
