// Package cblas is the cgo binding of OpenBLAS's cblas_sgemm that package
// kernels uses when built with -tags openblas (and cgo, with Debian's
// libopenblas-dev). Without the tag it is empty.
package cblas
