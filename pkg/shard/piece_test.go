package shard

import (
	"slices"
	"testing"
)

// TestWalkMatchesIndexMapping checks Walk against the element-by-element
// definition: local row j of dimension Dim is row w of block b's piece, i.e.
// whole row b·block + Rank·piece + w; the pieces of all ranks tile the whole
// tensor exactly once.
func TestWalkMatchesIndexMapping(t *testing.T) {
	for _, c := range []struct {
		full             []int
		dim, parts, size int
	}{
		{[]int{12, 2}, 0, 3, 2}, {[]int{2, 4}, 1, 1, 2}, {[]int{3, 12, 5}, 1, 3, 4}, {[]int{8}, 0, 1, 4},
	} {
		total := 1
		for _, d := range c.full {
			total *= d
		}
		cover := make([]int, total)
		for r := range c.size {
			p := &Piece{Full: c.full, Dim: c.dim, Parts: c.parts, Rank: r, Size: c.size}
			shape := p.Shape()
			n := 1
			for _, d := range shape {
				n *= d
			}
			got := make([]int, n)
			p.Walk(func(lo, fo, k int) {
				for i := range k {
					got[lo+i] = fo + i
				}
			})
			inner := 1
			for _, d := range c.full[c.dim+1:] {
				inner *= d
			}
			block, piece := c.full[c.dim]/c.parts, c.full[c.dim]/c.parts/c.size
			want := make([]int, n)
			for l := range n {
				o, rest := l/(shape[c.dim]*inner), l%(shape[c.dim]*inner)
				j, i := rest/inner, rest%inner
				b, w := j/piece, j%piece
				want[l] = (o*c.full[c.dim]+b*block+r*piece+w)*inner + i
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%+v: Walk maps %v, want %v", *p, got, want)
			}
			for _, f := range got {
				cover[f]++
			}
		}
		for f, k := range cover {
			if k != 1 {
				t.Fatalf("full %v dim %d: element %d covered %d times", c.full, c.dim, f, k)
			}
		}
	}
}
