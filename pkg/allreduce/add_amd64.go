//go:build amd64 && !purego && !race

package allreduce

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

//go:noescape
func addToAVX2(dst, src *float32, n int)

// addToAsm adds the first len(dst)&^7 elements with AVX2 and returns how many it did.
func addToAsm(dst, src []float32) int {
	n := len(dst) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	addToAVX2(&dst[0], &src[0], n)
	return n
}
