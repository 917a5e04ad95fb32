//go:build !amd64 || purego

package kernels

// No 32-column kernel exists off amd64, so this is never called.
func packBN32(dst, src *float32, ldb, kc int) { panic("kernels: packBN32 without AVX-512") }
