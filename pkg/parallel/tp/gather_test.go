package tp_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel/tp"
)

// Gather over a group of ranks built from one seed gives every rank the
// whole model built from that seed, bit for bit, for every architecture.
func TestGatherIsTheWholeModel(t *testing.T) {
	for _, c := range tpCases() {
		for _, size := range c.sizes {
			whole, err := model.New(c.cfg, 5)
			if err != nil {
				t.Fatal(err)
			}
			mg := newMemGroup(size)
			got := make([][]float32, size)
			errs := make([]error, size)
			var wg sync.WaitGroup
			for r := range size {
				g, err := tp.New(r, size, sumFunc(mg.allReduce(r)))
				if err != nil {
					t.Fatal(err)
				}
				local, err := model.New(c.cfg, 5, model.WithTensorParallel(g))
				if err != nil {
					t.Fatal(err)
				}
				full, err := model.New(c.cfg, 6) // other values, overwritten
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					errs[r] = g.Gather(context.Background(), full.Params(), local.Params())
					got[r] = full.Params().Data
				})
			}
			wg.Wait()
			for r := range size {
				if errs[r] != nil {
					t.Fatalf("%s tp %d rank %d: %v", c.name, size, r, errs[r])
				}
				if !slices.Equal(got[r], whole.Params().Data) {
					t.Fatalf("%s tp %d rank %d: gathered parameters are not the whole model's", c.name, size, r)
				}
			}
		}
	}
}
