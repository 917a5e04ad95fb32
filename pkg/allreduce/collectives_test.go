package allreduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPart(t *testing.T) {
	for _, tc := range []struct{ n, size int }{{0, 3}, {1, 3}, {2, 3}, {7, 3}, {9, 3}, {10, 8}, {1 << 20, 7}} {
		next := 0
		for i := range tc.size {
			lo, hi := Part(tc.n, tc.size, i)
			if lo != next || hi < lo || hi-lo > tc.n/tc.size+1 || hi-lo < tc.n/tc.size {
				t.Fatalf("Part(%d,%d,%d) = [%d,%d), previous end %d", tc.n, tc.size, i, lo, hi, next)
			}
			next = hi
		}
		if next != tc.n {
			t.Fatalf("Part(%d,%d,·) covers %d", tc.n, tc.size, next)
		}
	}
}

func TestReduceScatterAllGatherInproc(t *testing.T) {
	for n := 1; n <= 8; n++ {
		g, _ := newInprocGroup(t, n, 10*time.Second, Options{ChunkBytes: 64})
		ctx := testCtx(t)
		for _, l := range []int{0, 1, n - 1, 31, 1000} {
			for _, op := range []Op{Sum, Avg} {
				name := fmt.Sprintf("n=%d/len=%d/%v", n, l, op)
				in := inputs(uint64(l+7*n), n, l)
				bufs := clone(in)
				noErrors(t, g.each(func(r int, c *Communicator) error { return c.ReduceScatter(ctx, bufs[r], op) }))
				want := naive(in, op)
				for r := range n {
					lo, hi := Part(l, n, r)
					if err := closeTo(bufs[r][lo:hi], want[lo:hi], n); err != nil {
						t.Fatalf("%s: reduce-scatter rank %d: %v", name, r, err)
					}
				}
				// AllGather of the reduced parts rebuilds the all-reduce result.
				noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllGather(ctx, bufs[r]) }))
				for r := range n {
					if !bitsEqual(bufs[r], bufs[0]) {
						t.Fatalf("%s: all-gather rank %d differs", name, r)
					}
				}
				if err := closeTo(bufs[0], want, n); err != nil {
					t.Fatalf("%s: all-gather: %v", name, err)
				}
			}
		}
	}
}

func TestBroadcastBarrierInproc(t *testing.T) {
	for n := 1; n <= 8; n++ {
		g, _ := newInprocGroup(t, n, 10*time.Second, Options{ChunkBytes: 64, SmallBytes: 128})
		ctx := testCtx(t)
		for _, l := range []int{0, 1, 5, 32, 33, 1001} {
			for root := range n {
				in := inputs(uint64(l*10+root), n, l)
				bufs := clone(in)
				noErrors(t, g.each(func(r int, c *Communicator) error { return c.Broadcast(ctx, bufs[r], root) }))
				for r := range n {
					if !bitsEqual(bufs[r], in[root]) {
						t.Fatalf("n=%d len=%d root=%d: rank %d did not get root's buffer", n, l, root, r)
					}
				}
			}
		}
		noErrors(t, g.each(func(r int, c *Communicator) error { return c.Barrier(ctx) }))
	}
}

// TestAllReduceProperty checks random groups, sizes, chunkings and thresholds
// against a naive reduction; the direct path must equal the float32 sum in
// rank order exactly.
func TestAllReduceProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 60 {
		n := 1 + rng.IntN(8)
		l := rng.IntN(3000)
		chunk := 4 * (1 + rng.IntN(200))
		small := []int{-1, 1 << 20}[rng.IntN(2)]
		op := Op(rng.IntN(2))
		name := fmt.Sprintf("case %d: n=%d len=%d chunk=%d small=%d %v", i, n, l, chunk, small, op)
		g, _ := newInprocGroup(t, n, 10*time.Second, Options{ChunkBytes: chunk, SmallBytes: small})
		in := inputs(uint64(i), n, l)
		bufs := clone(in)
		ctx := testCtx(t)
		noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], op) }))
		for r := range n {
			if !bitsEqual(bufs[r], bufs[0]) {
				t.Fatalf("%s: rank %d differs", name, r)
			}
		}
		if err := closeTo(bufs[0], naive(in, op), n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if small > 0 && n > 1 {
			for j := range l {
				s := in[0][j]
				for r := 1; r < n; r++ {
					s += in[r][j]
				}
				if op == Avg {
					s /= float32(n)
				}
				if bufs[0][j] != s {
					t.Fatalf("%s: element %d = %v, rank-order sum %v", name, j, bufs[0][j], s)
				}
			}
		}
		g.close()
	}
}

// TestAsyncBuckets issues bucket all-reduces asynchronously, in the same
// order on every rank, and waits for them at the end (DDP style).
func TestAsyncBuckets(t *testing.T) {
	const n, buckets, l = 4, 6, 2500
	g, _ := newInprocGroup(t, n, 10*time.Second, Options{ChunkBytes: 1024, SmallBytes: 2048})
	ctx := testCtx(t)
	in := inputs(5, n, buckets*l)
	bufs := clone(in)
	noErrors(t, g.each(func(r int, c *Communicator) error {
		var hs []*Handle
		for b := buckets - 1; b >= 0; b-- { // backward produces the last bucket first
			hs = append(hs, c.AllReduceAsync(ctx, bufs[r][b*l:(b+1)*l], Avg))
		}
		for _, h := range hs {
			if err := h.Wait(); err != nil {
				return err
			}
		}
		return nil
	}))
	for r := range n {
		if !bitsEqual(bufs[r], bufs[0]) {
			t.Fatalf("rank %d differs", r)
		}
	}
	if err := closeTo(bufs[0], naive(in, Avg), n); err != nil {
		t.Fatal(err)
	}
}

func TestAllReduce64MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB buffers")
	}
	const l = 16 << 20 // 64 MiB of float32
	for _, n := range []int{2, 3} {
		g, _ := newInprocGroup(t, n, 20*time.Second, Options{ChunkBytes: 1 << 20})
		bufs := make([][]float32, n)
		for r := range n {
			bufs[r] = make([]float32, l)
			for i := range bufs[r] {
				bufs[r][i] = float32(r + 1 + i%7)
			}
		}
		ctx := testCtx(t)
		noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }))
		for r := range n {
			for i := 0; i < l; i += 4099 {
				want := float32(n*(n+1)/2 + n*(i%7))
				if bufs[r][i] != want {
					t.Fatalf("n=%d rank %d element %d = %v, want %v", n, r, i, bufs[r][i], want)
				}
			}
			if !bitsEqual(bufs[r], bufs[0]) {
				t.Fatalf("n=%d rank %d differs", n, r)
			}
		}
		g.close()
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, _ := newInprocGroup(t, 2, 10*time.Second, Options{Registerer: reg})
	ctx := testCtx(t)
	bufs := clone(inputs(1, 2, 1000))
	noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }))
	// A second generation on the same registry shares the collectors.
	g2, _ := newInprocGroup(t, 2, 10*time.Second, Options{Registerer: reg})
	noErrors(t, g2.each(func(r int, c *Communicator) error { return c.Barrier(ctx) }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if got[metricBytesSent] != 2*1000*4 || got[metricBytesReceived] != 2*1000*4 {
		t.Fatalf("bytes sent/received = %v/%v, want %v", got[metricBytesSent], got[metricBytesReceived], 2*1000*4)
	}
	var sent float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, lp := range m.GetLabel() {
				labels += lp.GetName() + "=" + lp.GetValue() + " "
			}
			if mf.GetName() == metricBytesSent && labels == "op=all_reduce transport="+TransportInproc+" " {
				sent += m.GetCounter().GetValue()
			}
		}
	}
	if sent != 2*1000*4 {
		t.Errorf("bytes sent {op=all_reduce, transport=inproc} = %v, want %v", sent, 2*1000*4)
	}
	if got[metricDuration] != 4 { // 2 ranks × (all-reduce + barrier)
		t.Fatalf("duration samples = %v, want 4", got[metricDuration])
	}
}
