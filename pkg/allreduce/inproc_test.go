package allreduce

import (
	"fmt"
	"testing"
	"time"
)

// sizesFor returns the interesting sizes for n ranks and chunk size (floats).
func sizesFor(n, chunk int) []int {
	s := []int{0, 1, n - 1, n, n + 1, 7, 13, 97, 1021, chunk - 1, chunk + 1, 3*chunk + 5, 2*n*chunk + 17}
	return s
}

func TestAllReduceInproc(t *testing.T) {
	const chunkBytes = 1 << 10 // small chunks: many pipeline frames at test sizes
	for n := 1; n <= 8; n++ {
		for _, small := range []int{-1, 1 << 12} {
			g, _ := newInprocGroup(t, n, 10*time.Second, Options{ChunkBytes: chunkBytes, SmallBytes: small})
			ctx := testCtx(t)
			for _, l := range sizesFor(n, chunkBytes/4) {
				for _, op := range []Op{Sum, Avg} {
					name := fmt.Sprintf("n=%d/small=%d/len=%d/%v", n, small, l, op)
					in := inputs(uint64(n*1000+l), n, l)
					bufs := clone(in)
					noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], op) }))
					want := naive(in, op)
					for r := range n {
						if !bitsEqual(bufs[r], bufs[0]) {
							t.Fatalf("%s: rank %d differs from rank 0", name, r)
						}
					}
					if err := closeTo(bufs[0], want, n); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
				}
			}
		}
	}
}
