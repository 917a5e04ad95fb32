package model

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// countJob records which items ran and which participants ran them.
type countJob struct {
	hits    []atomic.Int32
	maxPart atomic.Int32
}

func (j *countJob) run(i, w int) {
	j.hits[i].Add(1)
	for {
		m := j.maxPart.Load()
		if int32(w) <= m || j.maxPart.CompareAndSwap(m, int32(w)) {
			return
		}
	}
}

func TestWorkersRunEveryItemOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 4} {
		w := newWorkers(threads)
		for _, n := range []int{0, 1, 2, 3, 50} {
			for round := 0; round < 3; round++ { // the pool is reused
				j := &countJob{hits: make([]atomic.Int32, n)}
				w.For(n, j)
				for i := range j.hits {
					if h := j.hits[i].Load(); h != 1 {
						t.Fatalf("threads %d, n %d: item %d ran %d times", threads, n, i, h)
					}
				}
				if p := int(j.maxPart.Load()); p >= w.size() {
					t.Fatalf("threads %d: participant %d out of range [0,%d)", threads, p, w.size())
				}
			}
		}
		w.close()
		w.close() // idempotent
		j := &countJob{hits: make([]atomic.Int32, 5)}
		w.For(5, j) // after close: on the caller
		for i := range j.hits {
			if j.hits[i].Load() != 1 || j.maxPart.Load() != 0 {
				t.Fatalf("threads %d after close: item %d ran %d times, max participant %d", threads, i, j.hits[i].Load(), j.maxPart.Load())
			}
		}
	}
}

// A GPT step allocates nothing with its workers running either (gonum's
// own parallel Sgemm allocates, so the packed one is installed).
func TestGPTWorkersNoAllocs(t *testing.T) {
	impl, err := kernels.New(kernels.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = impl.Close() })
	cfg := Config{Arch: ArchGPT, NLayer: 1, NHead: 2, NEmbd: 16, BlockSize: 40, VocabSize: 11}.WithDefaults()
	g := mustGPT(t, cfg, 1, WithCompute(Compute{GEMM: impl, Threads: 3}))
	t.Cleanup(g.Close)
	const B, T = 5, 40 // enough rows for the parallel LayerNorm loop
	b := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.Tokens {
		b.Tokens[i], b.Targets[i] = int32(i%11), int32((i*3)%11)
	}
	step := func() {
		if _, err := g.Forward(context.Background(), b, true); err != nil {
			t.Fatal(err)
		}
		if err := g.Backward(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	if impl.Path() == kernels.Generic {
		t.Skip("the generic path is gonum's Sgemm, which allocates")
	}
	if n := testing.AllocsPerRun(10, step); n != 0 {
		t.Fatalf("%v allocations per step", n)
	}
}
