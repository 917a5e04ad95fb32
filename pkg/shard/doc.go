// Package shard describes which piece of a whole tensor a tensor-parallel
// rank holds (Piece) and copies between a piece and the whole tensor. It is
// a leaf shared by the model (its parameter views) and ckpt (the manifests
// it stores, gathers and reshards), so the two cannot drift apart.
package shard
