package allreduce

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkAllReduce measures in-process ranks over the bulk transport on
// 127.0.0.1 (bench/allreduce compares real processes against Gloo).
func BenchmarkAllReduce(b *testing.B) {
	for _, n := range []int{2, 4} {
		for _, bytes := range []int{4 << 10, 1 << 20, 16 << 20} {
			b.Run(fmt.Sprintf("n=%d/%dKiB", n, bytes>>10), func(b *testing.B) {
				g, _ := newGRPCGroup(b, n, ModeBulk, 30*time.Second, Options{})
				bufs := make([][]float32, n)
				for r := range bufs {
					bufs[r] = make([]float32, bytes/4)
				}
				b.SetBytes(int64(bytes))
				ctx := context.Background()
				b.ResetTimer()
				var wg sync.WaitGroup
				for r, c := range g.comms {
					wg.Go(func() {
						for range b.N {
							if err := c.AllReduce(ctx, bufs[r], Sum); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		}
	}
}
