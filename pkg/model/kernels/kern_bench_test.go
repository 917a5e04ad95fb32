package kernels

import "testing"

// BenchmarkMicroKernel measures the bare micro-kernel on L1-resident panels:
// the ceiling for the whole GEMM.
func BenchmarkMicroKernel(b *testing.B) {
	for _, p := range []Path{AVX2, AVX512} {
		kern := kernelFor(p)
		if kern == nil || !Supported(p) {
			continue
		}
		b.Run(p.String(), func(b *testing.B) {
			kc := 256
			a, bp, c := make([]float32, kern.mr*kc), make([]float32, kern.nr*kc), make([]float32, kern.mr*kern.nr)
			for b.Loop() {
				kern.fn(kc, &a[0], kern.mr, &bp[0], kern.nr, &c[0], kern.nr, 1, 1)
			}
			b.ReportMetric(2*float64(kern.mr*kern.nr*kc)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
