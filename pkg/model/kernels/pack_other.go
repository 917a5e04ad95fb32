//go:build !amd64 || purego

package kernels

// No 32-column kernel exists off amd64, so these are never called.
func packBN32(dst, src *float32, ldb, kc int) { panic("kernels: packBN32 without AVX-512") }

func packBT32(dst, src *float32, idx *[16]int32, ldb, kc int) {
	panic("kernels: packBT32 without AVX-512")
}

func packBT16(dst, src *float32, idx *[16]int32, kc int) { panic("kernels: packBT16 without AVX-512") }

func hasGather() bool { return false }
