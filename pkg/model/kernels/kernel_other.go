//go:build !amd64 || purego

package kernels

func hasAVX512() bool { return false }

func hasAVX2() bool { return false }

// kernelFor returns nil: only the Generic path exists on this architecture.
func kernelFor(Path) *microKernel { return nil }

// spinPause is a no-op here: no pool workers poll on this architecture.
func spinPause() {}
