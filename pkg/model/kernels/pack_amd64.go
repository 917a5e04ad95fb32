//go:build amd64 && !purego

package kernels

// The 32-column panel packer of the AVX-512 kernel (nr = 32 only exists
// where AVX-512 does). Callers check the bounds.

//go:noescape
func packBN32(dst, src *float32, ldb, kc int)
