package peak

import "golang.org/x/sys/cpu"

//go:noescape
func fma512(n int)

//go:noescape
func fma256(n int)

// fmaLoop returns a function running n iterations of the widest FMA loop
// this CPU has, and the FLOPs one iteration does.
func fmaLoop() (func(n int), float64, string) {
	switch {
	case cpu.X86.HasAVX512F:
		return fma512, 384, "AVX-512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return fma256, 192, "AVX2/FMA"
	}
	return nil, 0, ""
}
