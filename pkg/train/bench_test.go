package train

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// BenchmarkBabyGPTStep is one optimizer step of nanoGPT's baby GPT (4
// layers, 128 wide, block 64, batch 12) on all cores, two ways: lanes=1
// splits every matrix product across the cores; lanes=GOMAXPROCS gives each
// core its own rows of the batch with single-threaded matrix products.
// bench/babygpt/run.sh is the same comparison against PyTorch.
func BenchmarkBabyGPTStep(b *testing.B) {
	spec, err := jobspec.Preset("babygpt")
	if err != nil {
		b.Fatal(err)
	}
	if spec, err = jobspec.Override(spec, []string{"data.path=" + testText(b)}); err != nil {
		b.Fatal(err)
	}
	cores := runtime.GOMAXPROCS(0)
	for _, lanes := range []int{1, cores} {
		b.Run(fmt.Sprintf("lanes=%d", lanes), func(b *testing.B) {
			impl, err := kernels.New(kernels.Options{Threads: max(1, cores/lanes)})
			if err != nil {
				b.Fatal(err)
			}
			defer impl.Close()
			tr, err := New(spec, WithCompute(model.Compute{GEMM: impl}), WithLanes(lanes))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			tokens := 0
			for b.Loop() {
				st, err := tr.Step(ctx)
				if err != nil {
					b.Fatal(err)
				}
				tokens += st.Tokens
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
