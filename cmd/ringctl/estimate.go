package main

import (
	"fmt"
	"io"

	"github.com/ringmaster-ml/ringmaster/pkg/data"
	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
)

// estimateSpec prints spec's parameter count and per-process memory estimate
// under layout, opening the dataset for its vocabulary size when the spec
// leaves it 0 and openData allows (a submitted spec's data path is the
// workers'). It returns the estimate (ok false when the vocabulary is unknown).
func estimateSpec(w io.Writer, spec jobspec.Spec, layout jobspec.Layout, openData bool) (jobspec.Estimate, bool, error) {
	layout.VocabSize = spec.Model.VocabSize
	if layout.VocabSize == 0 && (openData || (spec.Data.Task != jobspec.TaskText && spec.Data.Task != jobspec.TaskTokens)) {
		ds, err := data.Open(spec)
		if err != nil {
			return jobspec.Estimate{}, false, err
		}
		layout.VocabSize = ds.Tokenizer().Size()
	}
	if layout.VocabSize == 0 {
		fmt.Fprintln(w, "model: parameter count and memory estimate need model.vocab_size (the workers take it from the dataset)")
		return jobspec.Estimate{}, false, nil
	}
	e, err := jobspec.EstimateMemory(spec, layout)
	if err != nil {
		return e, false, err
	}
	fmt.Fprintf(w, "model: %.2fM parameters (vocab %d); memory estimate %s per process: %s\n",
		float64(e.Params)/1e6, layout.VocabSize, sizeString(e.TotalBytes), e.Breakdown())
	return e, true, nil
}

func sizeString(b int64) string {
	if b < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}
