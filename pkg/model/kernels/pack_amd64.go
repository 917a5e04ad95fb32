//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// The 32-column panel packers of the AVX-512 kernel (nr = 32 only exists
// where AVX-512 does). Callers check the bounds.

//go:noescape
func packBN32(dst, src *float32, ldb, kc int)

//go:noescape
func packBT32(dst, src *float32, idx *[16]int32, ldb, kc int)

//go:noescape
func packBT16(dst, src *float32, idx *[16]int32, kc int)

// hasGather reports whether packBT16 may run (it uses AVX-512 gathers even
// for the AVX2 kernel's 16-column panels).
func hasGather() bool { return cpu.X86.HasAVX512F }
