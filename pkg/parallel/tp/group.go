package tp

import (
	"context"
	"fmt"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// Summer sums a buffer over the group's ranks, in place, leaving bitwise
// identical sums on every rank; *allreduce.Communicator provides it.
type Summer interface {
	AllReduce(ctx context.Context, buf []float32, op allreduce.Op) error
}

// Group is rank Rank of a tensor-parallel group of Size ranks: a
// model.TensorParallel. It is used by one goroutine (the one running the
// model's Forward and Backward).
type Group struct {
	rank, size int
	comm       Summer
	spent      time.Duration // in Reduce, since the last TakeCommTime
}

var _ model.TensorParallel = (*Group)(nil)

// New returns rank of a group of size ranks that sums over comm (which may
// be nil only when size is 1).
func New(rank, size int, comm Summer) (*Group, error) {
	switch {
	case size < 1:
		return nil, fmt.Errorf("parallel.tp: group size must be ≥ 1, got %d", size)
	case rank < 0 || rank >= size:
		return nil, fmt.Errorf("parallel.tp: rank %d out of range [0,%d)", rank, size)
	case size > 1 && comm == nil:
		return nil, fmt.Errorf("parallel.tp: no collective; a group of %d ranks needs a sum all-reduce", size)
	}
	return &Group{rank: rank, size: size, comm: comm}, nil
}

// Rank is this rank's index in the group.
func (g *Group) Rank() int { return g.rank }

// Size is the number of ranks.
func (g *Group) Size() int { return g.size }

// Column adds a column-parallel Linear of in → out features: this rank
// keeps the output rows of its share. The out features are parts equal
// blocks (3 for a fused q,k,v projection), each split across the group.
func (g *Group) Column(b *model.Builder, name string, in, out, parts int, bias bool) model.Linear {
	if g.size == 1 {
		return model.NewLinear(b, name, in, out, bias)
	}
	l := model.Linear{In: in, Out: out / g.size}
	l.W = b.AddShard(name+".weight", &model.Shard{Full: []int{out, in}, Dim: 0, Parts: parts, Rank: g.rank, Size: g.size})
	if bias {
		l.B = b.AddShard(name+".bias", &model.Shard{Full: []int{out}, Dim: 0, Parts: parts, Rank: g.rank, Size: g.size})
	}
	return l
}

// Row adds a row-parallel Linear of in → out features: this rank keeps the
// input columns of its share; the bias is whole (replicated).
func (g *Group) Row(b *model.Builder, name string, in, out int, bias bool) model.Linear {
	if g.size == 1 {
		return model.NewLinear(b, name, in, out, bias)
	}
	l := model.Linear{In: in / g.size, Out: out}
	l.W = b.AddShard(name+".weight", &model.Shard{Full: []int{out, in}, Dim: 1, Parts: 1, Rank: g.rank, Size: g.size})
	if bias {
		l.B = b.Add(name+".bias", out)
	}
	return l
}

// Reduce sums buf over the group in place.
func (g *Group) Reduce(ctx context.Context, buf []float32) error {
	if g.size == 1 {
		return nil
	}
	start := time.Now()
	err := g.comm.AllReduce(ctx, buf, allreduce.Sum)
	g.spent += time.Since(start)
	if err != nil {
		return fmt.Errorf("tensor-parallel all-reduce (rank %d of %d): %w", g.rank, g.size, err)
	}
	return nil
}

// TakeCommTime returns the time spent in Reduce since the last call, and
// starts counting again. A nil *Group (no tensor parallelism) spent none.
func (g *Group) TakeCommTime() time.Duration {
	if g == nil {
		return 0
	}
	d := g.spent
	g.spent = 0
	return d
}
