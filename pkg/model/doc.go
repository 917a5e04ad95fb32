// Package model is the math of ringmaster: float32 tensors on one flat
// parameter buffer with a manifest of named views, layers with explicit
// forward and backward passes side by side (embeddings, LayerNorm, attention
// with causal, bidirectional-with-padding and cross masks, MLP, softmax
// cross-entropy), the three architectures (GPT, BERT, encoder–decoder
// Transformer), AdamW, learning-rate schedules and safetensors interchange.
//
// It knows nothing about networks, Raft or files other than safetensors.
//
// # Parameters
//
// A Builder lays out named tensors (View: name, offset, shape, decay flag)
// one after another and allocates Params once: Data and Grad are two flat
// []float32 of the same length, and Params.Value(v) / Params.Gradient(v) are
// sub-slices. Names are the PyTorch state_dict names (nanoGPT's for GPT), so
// safetensors files interchange with PyTorch. Tied weights appear once, with
// an alias (GPT: "lm_head.weight" → "transformer.wte.weight").
//
// # Layers
//
// Each layer lives in its own file with Forward and Backward next to each
// other, in the style of llm.c: Forward saves exactly what Backward needs
// (the caller owns those buffers), and Backward accumulates (+=) into the
// input gradient and into Params.Grad. Slice arguments carry their shapes in
// comments: (N,C) with N = B·T rows, (B,T,C), (B,NH,T,S).
//
//	Linear        y = x·Wᵀ + b, W in nn.Linear layout (out,in)       linear.go
//	Embedding     rows of a table; learned positions                  embedding.go
//	SinusoidalTable / AddPositional  2017 fixed positions             posenc.go
//	LayerNorm     eps configurable, optional bias                     layernorm.go
//	Attention     multi-head core: causal, key padding, cross         attention.go
//	ActForward/ActBackward  GELU (erf), GELU (tanh), ReLU             activation.go
//	Dropout       inverted dropout with a caller-owned seeded RNG     dropout.go
//	ResidualForward/ResidualBackward                                  residual.go
//	CrossEntropy  softmax CE, IgnoreIndex, Batch.LossDenom            crossentropy.go
//
// Every matrix product goes through the GEMM the model was built with
// (WithCompute: a kernels.Impl in the binaries; nil is gonum's pure-Go
// reference), carried in Params and AttnArgs; nothing reads a process-wide
// choice, so models with different kernels can share a process. Attention runs
// as GEMMs per (batch row, head) over preallocated buffers, in causal row
// blocks that skip the masked keys; it takes its (local) head count and head
// size separately from n_embd so that a tensor-parallel rank can hold a
// subset of the heads.
//
// # Fast path and reference
//
// The elementwise work runs on vecmath's kernels (GELU with a float32 erf,
// attention softmax by blocks of rows, LayerNorm by blocks of rows, residual
// adds, AdamW; AVX2/AVX-512 assembly with pure-Go versions), and the
// per-head attention products run on vecmath.SmallGemm instead of the
// packed SGEMM. On the fast path GPT's GELU keeps its derivative from the
// forward erf in place of the c_fc output (backward multiplies), and its
// attention backward writes dQ, dK, dV without clearing them first
// (AttnGrads.Set). Each layer keeps its plain loops as a reference
// (forwardRef/backwardRef, actForwardRef, …) and tests hold the fast path to
// them; a GPT set to useReference runs only those, and
// TestFastPathMatchesReferenceLosses holds 50 training losses of the two
// paths within 1e-4. A GPT also owns a small worker pool (pool.go,
// Compute.Threads, default GOMAXPROCS) that its layers share through an exec
// (exec.go): attention over (batch row, head) pairs, activations over
// chunks, LayerNorm over row blocks (dW, dB summed per block in a fixed
// order, so results do not depend on scheduling). Dropout in attention
// keeps the reference loop, whose mask draws follow a fixed order.
//
// # Models
//
// Model is the interface of every architecture; New(cfg, seed) builds the one
// cfg.Arch names. Forward(batch, train) validates the batch (errors name the
// field), sizes activation buffers on first use (growing only for larger
// batches) and returns the loss; Backward adds d(loss)/d(params) to
// Params().Grad. Nothing is allocated per step after warm-up. Gradient
// accumulation is several Forward/Backward pairs before one optimizer step,
// with Batch.LossDenom set to the total target count.
//
// GPT (gpt.go) is nanoGPT's model.py with its initialisation, plus Generate
// (temperature, top-k sampling) and Greedy (batched argmax decoding).
// BERT (bert.go) and EncDec (encdec.go) are built on the same layers.
//
// # Tensor parallelism
//
// The model decides where the Megatron layers go; what they hold and how
// they sum is asked of the TensorParallel interface it defines (shard.go:
// Rank, Size, Column, Row, Reduce with the caller's context), which
// pkg/parallel/tp implements over a collective. Without
// WithTensorParallel the model uses the identity: one rank, whole tensors,
// no communication. A rank holds its heads' slices of the q/k/v and output
// projections and its slice of the MLP, while embeddings, LayerNorms and
// heads are replicated. Each block calls Reduce 2 times forward (after the
// attention and MLP output projections) and 2 backward (the gradient
// entering the column-parallel layers); encoder–decoder decoder blocks have
// 3 each way plus 1 backward for the encoder memory (the plan and its
// reasoning: pkg/parallel/tp's doc). Forward and Backward take a
// context.Context for these reduces. A sharded View carries a Shard (which piece of
// the whole tensor, same name as in the whole model) so checkpoints can
// gather (CopyToFull) and reshard (CopyFromFull). A rank's initial
// parameters are exactly its slices of the whole model built from the same
// seed. Model.SetGradHook reports, during Backward, each range of
// Params().Grad that has become final, for overlapping a data-parallel
// all-reduce with the rest of Backward.
//
// # Activation recomputation
//
// WithRecompute(RecomputeMLP | RecomputeBlock) makes a GPT's Backward
// recompute activations instead of keeping them (recompute.go): the MLP's
// two (N, n_hidden) tensors from the saved ln_2 output, or whole blocks from
// their saved inputs, with the dropout generators rewound to where Forward
// drew (rngState) so that the recomputed activations, and every gradient,
// are the same bits. TestRecomputeIsBitIdentical holds the three modes to
// each other.
//
// # Training helpers
//
// AdamW (optim.go) is torch.optim.AdamW over the flat buffer, or over a
// contiguous range of it for a ZeRO-1 shard; decay applies to views with
// Decay set. ClipGradNorm is torch's clip_grad_norm_. Schedule (schedule.go)
// is nanoGPT's get_lr.
//
// # Interchange
//
// Export/SaveFile write a model's Params as safetensors (one tensor per view,
// tied tensors once); Import/LoadFile read them back, rejecting missing,
// unexpected or misshapen tensors with errors that name the tensor and the
// expected shape. testdata/gen_gpt_fixture.py produces the PyTorch reference
// that gpt_fixture_test.go replays (loss, logits, gradients, one AdamW step,
// greedy decoding).
// # Mixed precision
//
// With Params.BF16 (train.precision: bf16) the products of every Linear —
// the forward product, the input gradient dout·W and the weight gradient
// doutᵀ·x, in GPT, BERT and the encoder–decoder, the tied LM head
// included — take their two inputs rounded to bfloat16 (round to nearest
// even) and accumulate in fp32 (kernels.Impl.GemmBF16; without the kernels
// installed, rounded copies through the fp32 Sgemm). Everything else is
// fp32: the parameters (master weights), gradients (the weight-gradient
// product accumulates into the fp32 gradient), AdamW's moments, LayerNorm
// statistics, softmax, attention's QKᵀ and PV (not yet bf16), GELU,
// cross-entropy and the loss, and every stored activation.
package model
