// Package vecmath holds the elementwise float32 kernels of the model's fast
// path: GELU (erf form) forward and backward with a float32 erf accurate to
// about 1e-7, exp with a running sum for softmax, max, scaling and the AdamW
// update. Each has a pure-Go version and, on amd64, an AVX2+FMA one
// (vec_amd64.s); the exported functions pick the assembly when the CPU has
// it, and the tests check every path against float64 references.
//
// Build with -tags purego to use only the pure-Go versions.
package vecmath
