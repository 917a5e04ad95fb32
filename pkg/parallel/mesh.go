package parallel

import "fmt"

// Mesh is a DP × TP grid of ranks. Rank r sits at (dp, tp) = (r / TP, r % TP):
// the ranks of one tensor-parallel group are consecutive (they exchange
// activations twice per block and should be the closest), and a data-parallel
// group is every TP-th rank.
type Mesh struct {
	DP, TP int
}

// NewMesh validates a layout.
func NewMesh(dp, tp int) (Mesh, error) {
	if dp < 1 || tp < 1 {
		return Mesh{}, fmt.Errorf("mesh: dp and tp must be ≥ 1, got dp=%d tp=%d", dp, tp)
	}
	return Mesh{DP: dp, TP: tp}, nil
}

// World is the number of ranks.
func (m Mesh) World() int { return m.DP * m.TP }

// Coords returns rank's (dp, tp) coordinates.
func (m Mesh) Coords(rank int) (dp, tp int) { return rank / m.TP, rank % m.TP }

// Rank is the rank at (dp, tp).
func (m Mesh) Rank(dp, tp int) int { return dp*m.TP + tp }

// TPGroup lists the ranks of the tensor-parallel group with data-parallel index dp, in TP order.
func (m Mesh) TPGroup(dp int) []int {
	g := make([]int, m.TP)
	for t := range g {
		g[t] = m.Rank(dp, t)
	}
	return g
}

// DPGroup lists the ranks of the data-parallel group with tensor-parallel index tp, in DP order.
func (m Mesh) DPGroup(tp int) []int {
	g := make([]int, m.DP)
	for d := range g {
		g[d] = m.Rank(d, tp)
	}
	return g
}

// Rows returns the rows [lo, hi) of a global batch of n rows that data-parallel
// index dp computes. The split is as even as possible and covers every row once.
func (m Mesh) Rows(dp, n int) (lo, hi int) { return Split(n, m.DP, dp) }

// Heads returns the attention heads [lo, hi) that tensor-parallel index tp owns.
func (m Mesh) Heads(tp, nHead int) (lo, hi int) { return Split(nHead, m.TP, tp) }

// Split divides n items into parts near-equal contiguous ranges and returns
// the i-th: the first n mod parts ranges are one longer. It is the one split
// of the project: a global batch over DP groups (Rows, and the rank table
// the coordinator publishes), heads over TP ranks, a buffer over the ranks of
// a ring (allreduce.Part: ReduceScatter, AllGather, ZeRO-1 slices) and the
// blocks of a matrix product over threads (kernels). Batch 7 over DP 3 is
// [0,3) [3,5) [5,7).
func Split(n, parts, i int) (lo, hi int) {
	q, r := n/parts, n%parts
	lo = i*q + min(i, r)
	hi = lo + q
	if i < r {
		hi++
	}
	return lo, hi
}
