// Package safetensors reads and writes the safetensors format, the interchange
// format of Hugging Face models: an 8-byte little-endian header length N, N
// bytes of JSON header mapping each tensor name to its dtype, shape and
// [begin, end) byte offsets into the data buffer (plus an optional
// "__metadata__" map of strings), then the data buffer itself.
//
// The reader is strict, like the reference implementation: the data buffer
// must be covered exactly by the tensors, in order, with no holes or overlaps;
// every size is checked before any byte is read. F32, F16, BF16 and F64 tensors
// are decoded to float32. The writer emits F32 only, with the header padded by
// spaces to a multiple of 8 bytes as the reference writer does.
//
// The package knows only about bytes and files: it does not know what a model
// or a parameter buffer is (pkg/model maps its manifest onto Tensors).
package safetensors
