// Package model is the math of ringmaster: float32 tensors on one flat
// parameter buffer with a manifest of named views, layers with explicit
// forward and backward passes side by side (embeddings, LayerNorm, attention
// with causal, bidirectional-with-padding and cross masks, MLP, softmax
// cross-entropy), the three architectures (GPT, BERT, encoder–decoder
// Transformer), AdamW, learning-rate schedules and safetensors interchange.
//
// It knows nothing about networks, Raft or files other than safetensors.
package model
