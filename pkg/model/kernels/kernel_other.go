//go:build !amd64 || purego

package kernels

func hasAVX512() bool { return false }

func hasAVX2() bool { return false }

// kernelFor returns nil: only the Generic path exists on this architecture.
func kernelFor(Path) *microKernel { return nil }
