// Package tokenizer is byte-level BPE, the subword tokenizer of GPT-2 and of
// most GPT-family models since: text is split into pre-tokens by GPT-2's
// pattern (contractions, letter runs, digit runs, punctuation runs, spaces),
// each pre-token's UTF-8 bytes start as 256 single-byte tokens, and the
// learned merges join adjacent tokens, lowest rank first, until none applies.
//
// It trains a tokenizer on a corpus (minbpe's RegexTokenizer; most frequent
// pair first, ties to the smallest pair), encodes and decodes, and reads and
// writes the files users already have: Hugging Face tokenizer.json (a BPE
// model with the ByteLevel pre-tokenizer), GPT-2's vocab.json + merges.txt,
// and tiktoken's .tiktoken rank files. Special tokens (<|endoftext|>, BERT's
// [CLS] [SEP] [MASK] [PAD]) are matched verbatim before pre-tokenization.
//
// A BPE is immutable once built and safe for concurrent use. The package is
// a leaf: pkg/data wraps it as one of the dataset tokenizers.
package tokenizer
