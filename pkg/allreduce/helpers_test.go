package allreduce

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// group is a set of communicators, one per rank, for tests.
type group struct {
	comms []*Communicator
}

// newInprocGroup returns n communicators connected in-process.
func newInprocGroup(t testing.TB, n int, timeout time.Duration, opts Options) (*group, *InprocNetwork) {
	t.Helper()
	net := NewInprocNetwork(GroupID{Job: "job-t", Generation: 7}, n, timeout)
	g := &group{}
	for r := range n {
		g.comms = append(g.comms, New(net.Endpoint(r), opts))
	}
	t.Cleanup(func() { g.close() })
	return g, net
}

func (g *group) close() {
	for _, c := range g.comms {
		c.Close()
	}
}

// each runs fn on every rank concurrently and returns the per-rank errors.
func (g *group) each(fn func(r int, c *Communicator) error) []error {
	errs := make([]error, len(g.comms))
	var wg sync.WaitGroup
	for r, c := range g.comms {
		wg.Go(func() { errs[r] = fn(r, c) })
	}
	wg.Wait()
	return errs
}

func noErrors(t testing.TB, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// inputs returns per-rank random buffers of length l (values with few bits
// so that float sums are exact only in a known order – we compare against a
// naive reduction in the order the algorithm promises, and bit-identity).
func inputs(seed uint64, n, l int) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	out := make([][]float32, n)
	for r := range out {
		out[r] = make([]float32, l)
		for i := range out[r] {
			out[r][i] = float32(rng.NormFloat64())
		}
	}
	return out
}

func clone(bufs [][]float32) [][]float32 {
	out := make([][]float32, len(bufs))
	for i, b := range bufs {
		out[i] = append([]float32(nil), b...)
	}
	return out
}

// naive reduces in float64 (the tolerance reference).
func naive(in [][]float32, op Op) []float64 {
	out := make([]float64, len(in[0]))
	for _, b := range in {
		for i, v := range b {
			out[i] += float64(v)
		}
	}
	if op == Avg {
		for i := range out {
			out[i] /= float64(len(in))
		}
	}
	return out
}

// closeTo reports the first element where got differs from want by more than
// a float32 summation error bound for n terms.
func closeTo(got []float32, want []float64, n int) error {
	for i := range got {
		d := float64(got[i]) - want[i]
		if d < 0 {
			d = -d
		}
		tol := 1e-6 * float64(n) * (1 + abs(want[i]) + 4)
		if d > tol {
			return fmt.Errorf("element %d: got %v want %v", i, got[i], want[i])
		}
	}
	return nil
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
