package ddp

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
)

// TestBucketsSumArmedRangesOnly: two ranks launch the same two ranges; an
// unarmed Launch reduces nothing, an armed round leaves the sums in place on
// both ranks after Wait, and a nil *Buckets (DP 1) is a no-op.
func TestBucketsSumArmedRangesOnly(t *testing.T) {
	net := allreduce.NewInprocNetwork(allreduce.GroupID{Job: "ddp", Generation: 1}, 2, 10*time.Second)
	grads := [][]float32{{1, 2, 3, 4, 5}, {10, 20, 30, 40, 50}}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range 2 {
		c := allreduce.New(net.Endpoint(r), allreduce.Options{})
		t.Cleanup(func() { c.Close() })
		b := New(c)
		wg.Go(func() {
			ctx := context.Background()
			b.Launch(ctx, grads[r][:2]) // not armed: local only
			if err := b.Wait(); err != nil || !b.First().IsZero() {
				errs[r] = err
				return
			}
			b.Arm()
			b.Launch(ctx, grads[r][3:5])
			b.Launch(ctx, grads[r][0:3])
			errs[r] = b.Wait()
			b.Launch(ctx, grads[r][:1]) // disarmed again by Wait
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	want := []float32{11, 22, 33, 44, 55}
	for r, g := range grads {
		for i := range want {
			if g[i] != want[i] {
				t.Fatalf("rank %d: grads %v, want %v", r, g, want)
			}
		}
	}
	var none *Buckets
	none.Arm()
	none.Launch(context.Background(), want)
	if none.Wait() != nil || !none.First().IsZero() {
		t.Fatal("nil Buckets is not a no-op")
	}
}
