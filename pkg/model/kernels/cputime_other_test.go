//go:build !unix

package kernels

// processCPU is unknown here: the GFLOP/cpu-s metric is then not reported.
func processCPU() float64 { return 0 }
