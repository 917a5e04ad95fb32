package ddp

import (
	"context"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
)

// Reducer starts a sum over the data-parallel group; *allreduce.Communicator
// provides it.
type Reducer interface {
	AllReduceAsync(ctx context.Context, buf []float32, op allreduce.Op) *allreduce.Handle
}

// Buckets are the gradient all-reduces of one step. Only an armed round
// launches (the last micro-step's backward: earlier ones accumulate
// locally). The methods of a nil *Buckets (no data parallelism) do nothing.
type Buckets struct {
	dp       Reducer
	armed    bool
	inflight []*allreduce.Handle
	first    time.Time
}

// New returns the buckets of a replica whose DP group is dp.
func New(dp Reducer) *Buckets { return &Buckets{dp: dp} }

// Arm makes the following Launch calls reduce, until Wait.
func (b *Buckets) Arm() {
	if b != nil {
		b.armed = true
	}
}

// Launch starts summing grad (a range backward has finished) over the group
// when armed.
func (b *Buckets) Launch(ctx context.Context, grad []float32) {
	if b == nil || !b.armed {
		return
	}
	if len(b.inflight) == 0 {
		b.first = time.Now()
	}
	b.inflight = append(b.inflight, b.dp.AllReduceAsync(ctx, grad, allreduce.Sum))
}

// First is the launch time of the latest round's first bucket (zero before any).
func (b *Buckets) First() time.Time {
	if b == nil {
		return time.Time{}
	}
	return b.first
}

// Wait waits for every bucket in flight (so no collective writes into the
// gradients afterwards), disarms, and returns the first error.
func (b *Buckets) Wait() error {
	if b == nil {
		return nil
	}
	var err error
	for _, h := range b.inflight {
		if werr := h.Wait(); werr != nil && err == nil {
			err = werr
		}
	}
	b.armed, b.inflight = false, b.inflight[:0]
	return err
}
