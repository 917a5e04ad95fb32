package shard

import "slices"

// Piece says which piece of a whole tensor a rank holds: dimension Dim of the
// whole shape Full is Parts equal blocks (q, k and v of a fused c_attn: 3),
// each cut into Size pieces; the rank holds piece Rank of every block. The
// local shape is Full with Full[Dim] divided by Size (Shape).
type Piece struct {
	Full  []int `json:"full"`
	Dim   int   `json:"dim"`
	Parts int   `json:"parts"`
	Rank  int   `json:"rank"`
	Size  int   `json:"size"`
}

// Shape is the shape of the piece.
func (p *Piece) Shape() []int {
	s := slices.Clone(p.Full)
	s[p.Dim] /= p.Size
	return s
}

// Clone is a deep copy of p (nil stays nil).
func (p *Piece) Clone() *Piece {
	if p == nil {
		return nil
	}
	c := *p
	c.Full = slices.Clone(p.Full)
	return &c
}

// Walk calls f(localOffset, fullOffset, n) for each contiguous run of the
// piece inside the whole tensor (row-major), in local order.
func (p *Piece) Walk(f func(lo, fo, n int)) {
	outer, inner := 1, 1
	for _, d := range p.Full[:p.Dim] {
		outer *= d
	}
	for _, d := range p.Full[p.Dim+1:] {
		inner *= d
	}
	block := p.Full[p.Dim] / p.Parts // rows of one block in the whole tensor
	piece := block / p.Size          // rows of one block on this rank
	lo := 0
	for o := 0; o < outer; o++ {
		for part := 0; part < p.Parts; part++ {
			fo := (o*p.Full[p.Dim] + part*block + p.Rank*piece) * inner
			f(lo, fo, piece*inner)
			lo += piece * inner
		}
	}
}
