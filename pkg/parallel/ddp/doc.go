// Package ddp is data parallelism past the forward pass (PyTorch DDP,
// Megatron's distributed gradient buffer): Buckets all-reduces each range of
// the flat gradient buffer as soon as backward has finished it, overlapping
// communication with the rest of backward, and waits for them all before the
// optimizer step. The ranges come from the model's gradient hook, in the
// same order on every rank, so every rank reduces the same buckets in the
// same order. ZeRO1 shards the optimizer state over the DP group (each rank
// steps its slice, then all-gathers the parameters). It is a subpackage so
// that pkg/parallel itself stays a leaf (allreduce uses its split); this one
// imports allreduce.
package ddp
