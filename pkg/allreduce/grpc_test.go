package allreduce

import (
	"fmt"
	"testing"
	"time"
)

func TestAllReduceGRPC(t *testing.T) {
	const chunkBytes = 4 << 10
	for _, mode := range []Mode{ModeBulk, ModeGRPC} {
		for n := 1; n <= 8; n++ {
			g, _ := newGRPCGroup(t, n, mode, 10*time.Second, Options{ChunkBytes: chunkBytes, SmallBytes: 1 << 10})
			ctx := testCtx(t)
			for _, l := range []int{0, 1, n - 1, 13, 1021, chunkBytes/4 + 1, 5*n*chunkBytes/4 + 3} {
				for _, op := range []Op{Sum, Avg} {
					name := fmt.Sprintf("mode=%d/n=%d/len=%d/%v", mode, n, l, op)
					in := inputs(uint64(n*1000+l), n, l)
					bufs := clone(in)
					noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], op) }))
					for r := range n {
						if !bitsEqual(bufs[r], bufs[0]) {
							t.Fatalf("%s: rank %d differs from rank 0", name, r)
						}
					}
					if err := closeTo(bufs[0], naive(in, op), n); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
				}
			}
			g.close()
		}
	}
}

func TestCollectivesBulk(t *testing.T) {
	const n, l = 3, 10007
	g, _ := newGRPCGroup(t, n, ModeBulk, 10*time.Second, Options{ChunkBytes: 4 << 10})
	ctx := testCtx(t)
	in := inputs(3, n, l)
	bufs := clone(in)
	noErrors(t, g.each(func(r int, c *Communicator) error {
		h := c.ReduceScatterAsync(ctx, bufs[r], Avg)
		h2 := c.AllGatherAsync(ctx, bufs[r])
		if err := h.Wait(); err != nil {
			return err
		}
		return h2.Wait()
	}))
	for r := range n {
		if !bitsEqual(bufs[r], bufs[0]) {
			t.Fatalf("rank %d differs", r)
		}
	}
	if err := closeTo(bufs[0], naive(in, Avg), n); err != nil {
		t.Fatal(err)
	}
	noErrors(t, g.each(func(r int, c *Communicator) error {
		if err := c.Broadcast(ctx, bufs[r], 2); err != nil {
			return err
		}
		return c.Barrier(ctx)
	}))
}
