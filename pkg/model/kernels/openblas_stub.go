//go:build !openblas || !cgo

package kernels

// openblasBuilt is false: build with -tags openblas (and cgo, with
// Debian's libopenblas-dev) for the OpenBLAS backend. New refuses the path
// before calling anything below.
const openblasBuilt = false

func openblasInit(int) error { panic("kernels: OpenBLAS backend not built") }

func openblasSgemm(*gemmArgs) { panic("kernels: OpenBLAS backend not built") }
