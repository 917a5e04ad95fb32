// Package vecmath holds the elementwise float32 kernels of the model's fast
// path and of the collectives (allreduce sums received chunks with Add); it
// is a leaf under neither, so both use it: GELU (erf form) forward and
// backward with a float32 erf accurate to about 1e-7, also both at once from one erf (GeluFwdGrad); exp with a
// running sum for softmax, max and scaling, and softmax over a block of
// (causal) attention rows (SoftmaxRows); the LayerNorm row kernels and
// LayerNorm over a block of rows; addition and multiplication; Σx² in
// float64 (gradient norm); the AdamW update (bit-identical to its plain
// loop) and SmallGemm, an unpacked product for one attention head's
// (T,T)·(T,hs) operands.
//
// Each kernel has a pure-Go version and, on amd64, an AVX2+FMA one
// (vec_amd64.s); GELU, SmallGemm, SoftmaxRows and the LayerNorm blocks also
// have AVX-512 ones. The exported functions pick the best the CPU runs for
// the bulk of a slice and finish the tail in Go; the tests run every path
// this CPU has against float64 references. Build with -tags purego for the
// pure-Go versions only.
package vecmath
