package model

import (
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// BenchmarkGPTStepKernels is BenchmarkGPTStep on the fast SGEMM.
func BenchmarkGPTStepKernels(b *testing.B) {
	impl, err := kernels.New(kernels.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = impl.Close() })
	benchmarkGPTStep(b, Compute{GEMM: impl})
}

// BenchmarkAttentionKernels is one baby-GPT attention layer, forward and
// backward (B 12, 4 heads of 32, T 64, causal), fast SGEMM, 2 workers.
func BenchmarkAttentionKernels(b *testing.B) {
	impl, err := kernels.New(kernels.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = impl.Close() })
	const B, NH, hs, T = 12, 4, 32, 64
	const C = NH * hs
	rng := newRNG(1, 1)
	a := Attention{NHead: NH, HeadSize: hs, Causal: true}
	attN, scrN := a.Sizes(B, T, T)
	qkv := randSlice(rng, B*T*3*C, 1)
	dqkv := make([]float32, B*T*3*C)
	x := AttnArgs{B: B, T: T, S: T, Q: qkv, LDQ: 3 * C, K: qkv[C:], V: qkv[2*C:], LDKV: 3 * C,
		Out: make([]float32, B*T*C), LDO: C, Att: make([]float32, attN), Scratch: make([]float32, scrN), GEMM: impl}
	g := AttnGrads{DQ: dqkv, DK: dqkv[C:], DV: dqkv[2*C:], DOut: randSlice(rng, B*T*C, 1)}
	ex := &exec{pool: newWorkers(0)}
	defer ex.pool.close()
	for b.Loop() {
		a.forward(ex, nil, x, true)
		a.backward(ex, x, g, true)
	}
}
