package ckpt

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// Part is one tensor-parallel rank's flat buffer with its manifest.
type Part struct {
	Manifest []Tensor
	Data     []float32
}

// FullManifest is the manifest of the whole model m is a piece of: every
// tensor whole (its Split's Full shape, no Split), in m's order, laid out
// contiguously from offset 0.
func FullManifest(m []Tensor) []Tensor {
	out := make([]Tensor, len(m))
	off := 0
	for i, t := range m {
		out[i] = Tensor{Name: t.Name, Offset: off, Shape: slices.Clone(t.FullShape()), Decay: t.Decay}
		off += out[i].Size()
	}
	return out
}

// LocalManifest is the manifest of rank of a TP group of size, derived from
// m, a manifest that carries the split information (any rank's of any TP
// size > 1, or a whole model built with tensor parallelism): split tensors
// become piece rank of size, replicated ones stay whole, laid out
// contiguously from offset 0 in m's order. A whole model built without
// tensor parallelism carries no split information; take the target manifest
// from a model built for the new layout instead.
func LocalManifest(m []Tensor, rank, size int) ([]Tensor, error) {
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("ckpt: local manifest: tp rank %d of %d is out of range", rank, size)
	}
	out := make([]Tensor, len(m))
	off := 0
	for i, t := range m {
		n := Tensor{Name: t.Name, Offset: off, Shape: slices.Clone(t.FullShape()), Decay: t.Decay}
		if s := t.Split; s != nil {
			n.Split = &Split{Full: slices.Clone(s.Full), Dim: s.Dim, Parts: s.Parts, Rank: rank, Size: size}
			if s.Full[s.Dim]%(s.Parts*size) != 0 {
				return nil, fmt.Errorf("ckpt: local manifest: tensor %q: dim %d of %v does not split into %d parts × %d ranks", t.Name, s.Dim, s.Full, s.Parts, size)
			}
			n.Shape = n.Split.Shape()
		}
		out[i] = n
		off += n.Size()
	}
	return out, nil
}

// bufLen is the buffer length a manifest needs (the end of its last tensor).
func bufLen(m []Tensor) int {
	n := 0
	for _, t := range m {
		n = max(n, t.Offset+t.Size())
	}
	return n
}

// byName indexes a manifest.
func byName(m []Tensor) map[string]Tensor {
	idx := make(map[string]Tensor, len(m))
	for _, t := range m {
		idx[t.Name] = t
	}
	return idx
}

// GatherFlat assembles the whole-model buffer laid out per target (whole
// tensors, no Split) from the buffers of every rank of a TP group, parts[r]
// being rank r's. Split tensors are assembled from each rank's piece;
// replicated ones are taken from rank 0. Every tensor of target must be in
// the parts and every tensor of the parts in target.
func GatherFlat(parts []Part, target []Tensor) ([]float32, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("ckpt: gather: no parts")
	}
	if err := checkManifest(target, bufLen(target)); err != nil {
		return nil, fmt.Errorf("ckpt: gather: target %w", err)
	}
	idx := make([]map[string]Tensor, len(parts))
	for r, p := range parts {
		if err := checkManifest(p.Manifest, len(p.Data)); err != nil {
			return nil, fmt.Errorf("ckpt: gather: tp rank %d: %w", r, err)
		}
		idx[r] = byName(p.Manifest)
		if err := sameNames(idx[r], target); err != nil {
			return nil, fmt.Errorf("ckpt: gather: tp rank %d: %w", r, err)
		}
	}
	full := make([]float32, bufLen(target))
	for _, t := range target {
		if t.Split != nil {
			return nil, fmt.Errorf("ckpt: gather: target tensor %q is itself a piece (rank %d of %d)", t.Name, t.Split.Rank, t.Split.Size)
		}
		dst := full[t.Offset : t.Offset+t.Size()]
		if src := idx[0][t.Name]; src.Split == nil {
			if !slices.Equal(src.Shape, t.Shape) {
				return nil, fmt.Errorf("ckpt: gather: tensor %q: tp rank 0 holds shape %v, target %v", t.Name, src.Shape, t.Shape)
			}
			copy(dst, parts[0].Data[src.Offset:src.Offset+src.Size()])
			continue
		}
		for r, p := range parts {
			src := idx[r][t.Name]
			s, s0 := src.Split, idx[0][t.Name].Split
			switch {
			case s == nil:
				return nil, fmt.Errorf("ckpt: gather: tensor %q is split on tp rank 0 but whole on tp rank %d", t.Name, r)
			case s.Rank != r || s.Size != len(parts):
				return nil, fmt.Errorf("ckpt: gather: tensor %q: part %d holds piece %d of %d, want %d of %d", t.Name, r, s.Rank, s.Size, r, len(parts))
			case !slices.Equal(s.Full, t.Shape) || s.Dim != s0.Dim || s.Parts != s0.Parts:
				return nil, fmt.Errorf("ckpt: gather: tensor %q: tp rank %d splits %v along dim %d in %d parts; target %v, rank 0 dim %d in %d parts",
					t.Name, r, s.Full, s.Dim, s.Parts, t.Shape, s0.Dim, s0.Parts)
			}
			src.View().CopyToFull(dst, p.Data[src.Offset:src.Offset+src.Size()])
		}
	}
	return full, nil
}

// ReshardFlat cuts the whole-model buffer full (laid out per fullManifest:
// whole tensors) into the buffer laid out per target, a rank's manifest:
// each split tensor of target gets its piece, each whole one a copy.
func ReshardFlat(full []float32, fullManifest, target []Tensor) ([]float32, error) {
	if err := checkManifest(fullManifest, len(full)); err != nil {
		return nil, fmt.Errorf("ckpt: reshard: source %w", err)
	}
	if err := checkManifest(target, bufLen(target)); err != nil {
		return nil, fmt.Errorf("ckpt: reshard: target %w", err)
	}
	idx := byName(fullManifest)
	if err := sameNames(idx, target); err != nil {
		return nil, fmt.Errorf("ckpt: reshard: %w", err)
	}
	local := make([]float32, bufLen(target))
	for _, t := range target {
		src := idx[t.Name]
		switch {
		case src.Split != nil:
			return nil, fmt.Errorf("ckpt: reshard: source tensor %q is a piece (rank %d of %d), not whole", t.Name, src.Split.Rank, src.Split.Size)
		case !slices.Equal(src.Shape, t.FullShape()):
			return nil, fmt.Errorf("ckpt: reshard: tensor %q: source shape %v, target needs %v", t.Name, src.Shape, t.FullShape())
		}
		t.View().CopyFromFull(local[t.Offset:t.Offset+t.Size()], full[src.Offset:src.Offset+src.Size()])
	}
	return local, nil
}

// sameNames reports the first tensor in only one of idx and m.
func sameNames(idx map[string]Tensor, m []Tensor) error {
	in := make(map[string]bool, len(m))
	for _, t := range m {
		if _, ok := idx[t.Name]; !ok {
			return fmt.Errorf("tensor %q of the target is missing", t.Name)
		}
		in[t.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(idx)) {
		if !in[name] {
			return fmt.Errorf("tensor %q is not in the target", name)
		}
	}
	return nil
}

// Gather assembles the shards of every TP rank of one checkpoint (in any
// order) into a whole-model shard (TP 0 of 1) laid out per target, whole
// tensors such as FullManifest of a shard's manifest or a TP=1 model's
// views. Parameters and both AdamW moments are gathered; the moments must
// cover each rank's whole buffer. Job, step, model hash, iteration and
// optimizer steps must agree; generation is the highest; Spec and Meta are
// rank 0's.
func Gather(shards []*Shard, target []Tensor) (*Shard, error) {
	if len(shards) == 0 {
		return nil, fmt.Errorf("ckpt: gather: no shards")
	}
	ss := slices.SortedFunc(slices.Values(shards), func(a, b *Shard) int { return cmp.Compare(a.TP, b.TP) })
	s0 := ss[0]
	gen := s0.Generation
	data, m, v := make([]Part, len(ss)), make([]Part, len(ss)), make([]Part, len(ss))
	for r, s := range ss {
		switch {
		case s.Job != s0.Job || s.Step != s0.Step:
			return nil, fmt.Errorf("ckpt: gather job %q step %d: tp rank %d is of job %q step %d", s0.Job, s0.Step, s.TP, s.Job, s.Step)
		case s.TP != r || s.TPSize != len(ss):
			return nil, fmt.Errorf("ckpt: gather job %q step %d: shards are not tp ranks 0..%d of %d (found tp %d of %d)", s0.Job, s0.Step, len(ss)-1, len(ss), s.TP, s.TPSize)
		case s.ModelHash != s0.ModelHash || s.Iter != s0.Iter || s.Optim.Steps != s0.Optim.Steps:
			return nil, fmt.Errorf("ckpt: gather job %q step %d: tp rank %d disagrees with rank 0 (model %q iter %d optimizer steps %d vs %q %d %d)",
				s0.Job, s0.Step, r, s.ModelHash, s.Iter, s.Optim.Steps, s0.ModelHash, s0.Iter, s0.Optim.Steps)
		case s.Optim.Lo != 0 || s.Optim.Hi != len(s.Data):
			return nil, fmt.Errorf("ckpt: gather job %q step %d: tp rank %d holds moments of [%d,%d) only, not of its %d parameters", s0.Job, s0.Step, r, s.Optim.Lo, s.Optim.Hi, len(s.Data))
		}
		gen = max(gen, s.Generation)
		data[r] = Part{s.Manifest, s.Data}
		m[r] = Part{s.Manifest, s.Optim.M}
		v[r] = Part{s.Manifest, s.Optim.V}
	}
	out := make([][]float32, 3)
	for i, parts := range [][]Part{data, m, v} {
		var err error
		if out[i], err = GatherFlat(parts, target); err != nil {
			return nil, fmt.Errorf("ckpt: gather job %q step %d %s: %w", s0.Job, s0.Step, sections[i], err)
		}
	}
	g := s0.withData(cloneManifest(target), out[0], Optim{Lo: 0, Hi: len(out[0]), M: out[1], V: out[2], Steps: s0.Optim.Steps})
	g.TP, g.TPSize, g.Generation = 0, 1, gen
	return g, nil
}

// Reshard cuts a whole-model shard (TP size 1, moments over the whole
// buffer) into rank's piece of a TP group of size, laid out per target
// (that rank's manifest, e.g. LocalManifest or the new model's views).
func Reshard(full *Shard, target []Tensor, rank, size int) (*Shard, error) {
	switch {
	case full.TPSize != 1:
		return nil, fmt.Errorf("ckpt: reshard job %q step %d: source is tp %d of %d, not the whole model; Gather it first", full.Job, full.Step, full.TP, full.TPSize)
	case full.Optim.Lo != 0 || full.Optim.Hi != len(full.Data):
		return nil, fmt.Errorf("ckpt: reshard job %q step %d: moments cover [%d,%d) only, not the %d parameters", full.Job, full.Step, full.Optim.Lo, full.Optim.Hi, len(full.Data))
	case size < 1 || rank < 0 || rank >= size:
		return nil, fmt.Errorf("ckpt: reshard job %q step %d: tp rank %d of %d is out of range", full.Job, full.Step, rank, size)
	}
	for _, t := range target {
		if s := t.Split; s != nil && (s.Rank != rank || s.Size != size) {
			return nil, fmt.Errorf("ckpt: reshard job %q step %d: target tensor %q is piece %d of %d, want %d of %d", full.Job, full.Step, t.Name, s.Rank, s.Size, rank, size)
		}
	}
	out := make([][]float32, 3)
	for i, x := range [][]float32{full.Data, full.Optim.M, full.Optim.V} {
		var err error
		if out[i], err = ReshardFlat(x, full.Manifest, target); err != nil {
			return nil, fmt.Errorf("ckpt: reshard job %q step %d %s to tp %d of %d: %w", full.Job, full.Step, sections[i], rank, size, err)
		}
	}
	r := full.withData(cloneManifest(target), out[0], Optim{Lo: 0, Hi: len(out[0]), M: out[1], V: out[2], Steps: full.Optim.Steps})
	r.TP, r.TPSize = rank, size
	return r, nil
}

func cloneManifest(m []Tensor) []Tensor {
	out := make([]Tensor, len(m))
	for i, t := range m {
		t.Shape = slices.Clone(t.Shape)
		if t.Split != nil {
			s := *t.Split
			s.Full = slices.Clone(s.Full)
			t.Split = &s
		}
		out[i] = t
	}
	return out
}
