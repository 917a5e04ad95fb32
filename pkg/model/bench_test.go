package model

import (
	"context"
	"testing"
)

// BenchmarkGPTStep is one training micro-step (Forward+Backward+AdamW) of
// nanoGPT's CPU "baby GPT" (n_layer 4, n_head 4, n_embd 128, block 64,
// batch 12, vocab 65).
func BenchmarkGPTStep(b *testing.B) { benchmarkGPTStep(b, Compute{}) }

// benchmarkGPTStep is BenchmarkGPTStep on c.
func benchmarkGPTStep(b *testing.B, c Compute) {
	cfg := Config{Arch: ArchGPT, NLayer: 4, NHead: 4, NEmbd: 128, BlockSize: 64, VocabSize: 65}.WithDefaults()
	m, err := New(cfg, 1337, WithCompute(c))
	if err != nil {
		b.Fatal(err)
	}
	const B, T = 12, 64
	batch := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	rng := newRNG(1, 1)
	for i := range batch.Tokens {
		batch.Tokens[i] = int32(rng.IntN(65))
		batch.Targets[i] = int32(rng.IntN(65))
	}
	opt, err := NewAdamW(m.Params(), 0.9, 0.99, 0, 0.1)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Forward(context.Background(), batch, true); err != nil {
			b.Fatal(err)
		}
		m.Backward(context.Background())
		ClipGradNorm(m.Params().Grad, 1)
		opt.Step(m.Params(), 1e-3)
		m.Params().ZeroGrad()
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
