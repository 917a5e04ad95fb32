//go:build !openblas || !cgo

package kernels

import "errors"

// openblasBuilt is false: build with -tags openblas (and cgo, with
// Debian's libopenblas-dev) for the OpenBLAS backend.
const openblasBuilt = false

func openblasInit(int) error {
	return errors.New("this binary was built without it; rebuild with -tags openblas (needs cgo and libopenblas-dev)")
}

func openblasSgemm(*gemmArgs) { panic("kernels: OpenBLAS backend not built") }
