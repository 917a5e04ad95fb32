// Package data turns a dataset spec into batches of token ids: char-level
// text files (nanoGPT's shakespeare_char, for GPT and for BERT masked LM),
// token files (nanoGPT's train.bin/val.bin, memory-mapped, with a byte-level
// BPE from pkg/tokenizer; Prepare writes them from text files), and
// built-in synthetic tasks with held-out problems and an exact-match scorer
// (minGPT's sort and addition demos for GPT, digit-string reversal for the
// encoder–decoder Transformer).
//
// Its one contract with the rest of ringmaster is determinism: the global batch
// at a step is a pure function of (dataset, seed, split, step). Every row of a
// global batch draws from its own random generator, seeded by a hash of
// (seed, stream, split, step, row), so a data-parallel rank materialises only
// its rows [lo, hi) without generating the others, and any partition of the
// rows gives the same data. Nothing here depends on how many ranks there are.
//
// Settings come from a jobspec.Spec (data, model.arch and block_size, the
// seeds); batches are written into model.Batch. Nothing else of the model is
// known here: held-out scoring takes the greedy decoder as a parameter. The
// package must not depend on the rank count for *what* the global batch is.
package data
