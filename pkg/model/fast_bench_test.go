package model

import (
	"testing"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// BenchmarkGPTStepKernels is BenchmarkGPTStep with the fast SGEMM installed
// as gonum's BLAS (restored afterwards).
func BenchmarkGPTStepKernels(b *testing.B) {
	impl, err := kernels.New(kernels.Options{})
	if err != nil {
		b.Fatal(err)
	}
	prev := blas32.Implementation()
	blas32.Use(impl)
	b.Cleanup(func() { blas32.Use(prev); _ = impl.Close() })
	BenchmarkGPTStep(b)
}
