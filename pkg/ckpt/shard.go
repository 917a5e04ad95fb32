package ckpt

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/shard"
)

// Shard is one tensor-parallel rank's checkpoint at one step of one job.
type Shard struct {
	Job        string
	Step       int    // the step the checkpoint was taken at (its key)
	Generation uint64 // the generation that wrote it
	TP, TPSize int    // tensor-parallel rank and group size

	// ModelHash identifies the model configuration (opaque to ckpt); Spec
	// optionally holds the job spec it came from (JSON or YAML, opaque).
	ModelHash string
	Spec      []byte

	// Manifest names the tensors of Data in layout order (Params.Views).
	Manifest []Tensor
	Data     []float32 // the flat parameter buffer of this rank
	Optim    Optim
	Iter     int               // the trainer's iteration count
	Meta     map[string]string // RNG state and anything else the trainer needs

	// Created is when Put stored the shard (set by Put; ignored on input).
	Created time.Time
}

// Optim is the AdamW state of a shard: the moments M and V of Data[Lo:Hi)
// (the whole buffer unless the optimizer state is itself sharded) and the
// number of steps taken.
type Optim struct {
	Lo, Hi int
	M, V   []float32 // Hi−Lo values each
	Steps  int
}

// Tensor is one manifest entry: a named tensor of Shape at Offset in the flat
// buffer. Split is nil for a whole (under TP: replicated) tensor, otherwise
// it says which piece of the whole tensor the entry holds.
type Tensor struct {
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Shape  []int  `json:"shape"`
	Decay  bool   `json:"decay,omitempty"`
	Split  *Split `json:"split,omitempty"`
}

// Split is the piece of the whole tensor a TP rank's tensor holds
// (shard.Piece, the type model.View.Shard has too: one description, not a
// mirror).
type Split = shard.Piece

// Info describes a stored shard without its data.
type Info struct {
	Job        string
	Step       int
	Generation uint64
	TP, TPSize int
	Iter       int
	Bytes      int64 // payload bytes: parameters and both moments
	Created    time.Time
	// SHA256 is over the payload (parameters, then m, then v, as
	// little-endian float32): equal on every worker holding the same state,
	// whatever their chunk size. Replicas are compared by it.
	SHA256 []byte
}

// Manifest converts a model's views (Params.Views) into manifest entries.
func Manifest(views []model.View) []Tensor {
	m := make([]Tensor, len(views))
	for i, v := range views {
		t := Tensor{Name: v.Name, Offset: v.Offset, Shape: slices.Clone(v.Shape), Decay: v.Decay}
		if s := v.Shard; s != nil {
			t.Split = s.Clone()
		}
		m[i] = t
	}
	return m
}

// View converts t back into a model.View.
func (t Tensor) View() model.View {
	v := model.View{Name: t.Name, Offset: t.Offset, Shape: slices.Clone(t.Shape), Decay: t.Decay}
	if s := t.Split; s != nil {
		v.Shard = s.Clone()
	}
	return v
}

// Size is the number of elements of t.
func (t Tensor) Size() int { return prod(t.Shape) }

// FullShape is the shape of the whole tensor t holds (a piece of).
func (t Tensor) FullShape() []int {
	if t.Split == nil {
		return t.Shape
	}
	return t.Split.Full
}

// Views returns the shard's manifest as model views.
func (s *Shard) Views() []model.View {
	v := make([]model.View, len(s.Manifest))
	for i, t := range s.Manifest {
		v[i] = t.View()
	}
	return v
}

// Info summarises s.
func (s *Shard) Info() Info {
	return Info{Job: s.Job, Step: s.Step, Generation: s.Generation, TP: s.TP, TPSize: s.TPSize, Iter: s.Iter,
		Bytes: 4 * int64(len(s.Data)+len(s.Optim.M)+len(s.Optim.V)), Created: s.Created}
}

// withData returns a copy of s (metadata deep-copied) holding the given
// manifest and buffers.
func (s *Shard) withData(manifest []Tensor, data []float32, o Optim) *Shard {
	c := *s
	c.Spec = slices.Clone(s.Spec)
	c.Meta = maps.Clone(s.Meta)
	c.Manifest = manifest
	c.Data = data
	c.Optim = o
	return &c
}

// validate checks the shard's internal consistency before it is stored.
func (s *Shard) validate() error {
	switch {
	case s.Job == "":
		return fmt.Errorf("job id is empty")
	case s.Step < 0:
		return fmt.Errorf("step %d is negative", s.Step)
	case s.TPSize < 1 || s.TP < 0 || s.TP >= s.TPSize:
		return fmt.Errorf("tp rank %d of %d is out of range", s.TP, s.TPSize)
	case s.Iter < 0 || s.Optim.Steps < 0:
		return fmt.Errorf("iteration %d or optimizer steps %d is negative", s.Iter, s.Optim.Steps)
	}
	if err := checkManifest(s.Manifest, len(s.Data)); err != nil {
		return err
	}
	o := s.Optim
	if o.Lo < 0 || o.Hi > len(s.Data) || o.Lo > o.Hi {
		return fmt.Errorf("optimizer range [%d,%d) outside the %d parameters", o.Lo, o.Hi, len(s.Data))
	}
	if len(o.M) != o.Hi-o.Lo || len(o.V) != o.Hi-o.Lo {
		return fmt.Errorf("optimizer range [%d,%d) holds %d values, but M has %d and V %d", o.Lo, o.Hi, o.Hi-o.Lo, len(o.M), len(o.V))
	}
	return nil
}

// checkManifest checks that the tensors of m lie inside a buffer of n
// values, in layout order without overlap, with unique names and split
// information consistent with their shapes.
func checkManifest(m []Tensor, n int) error {
	names := make(map[string]bool, len(m))
	end := 0
	for _, t := range m {
		switch {
		case t.Name == "":
			return fmt.Errorf("manifest: tensor at offset %d has no name", t.Offset)
		case names[t.Name]:
			return fmt.Errorf("manifest: duplicate tensor %q", t.Name)
		case slices.ContainsFunc(t.Shape, func(d int) bool { return d < 0 }):
			return fmt.Errorf("manifest: tensor %q has negative shape %v", t.Name, t.Shape)
		case !fitsInt(t.Shape):
			return fmt.Errorf("manifest: tensor %q: shape %v has more elements than an int holds", t.Name, t.Shape)
		case t.Split != nil && (slices.ContainsFunc(t.Split.Full, func(d int) bool { return d < 0 }) || !fitsInt(t.Split.Full)):
			return fmt.Errorf("manifest: tensor %q: whole shape %v is negative or has more elements than an int holds", t.Name, t.Split.Full)
		case t.Offset < end:
			return fmt.Errorf("manifest: tensor %q at offset %d overlaps the previous tensor (ends at %d)", t.Name, t.Offset, end)
		case t.Offset > n || t.Size() > n-t.Offset: // not Offset+Size > n: that can wrap
			return fmt.Errorf("manifest: tensor %q [%d,%d) lies outside the %d-value buffer", t.Name, t.Offset, t.Offset+t.Size(), n)
		}
		names[t.Name] = true
		end = t.Offset + t.Size()
		if err := t.checkSplit(); err != nil {
			return err
		}
	}
	return nil
}

// checkSplit checks that t's shape is piece Split.Rank of Split.Full.
func (t Tensor) checkSplit() error {
	s := t.Split
	if s == nil {
		return nil
	}
	switch {
	case s.Dim < 0 || s.Dim >= len(s.Full) || len(s.Full) != len(t.Shape):
		return fmt.Errorf("manifest: tensor %q: split dim %d does not fit shape %v (whole %v)", t.Name, s.Dim, t.Shape, s.Full)
	case s.Parts < 1 || s.Size < 1 || s.Rank < 0 || s.Rank >= s.Size:
		return fmt.Errorf("manifest: tensor %q: split rank %d of %d in %d parts is invalid", t.Name, s.Rank, s.Size, s.Parts)
	case s.Full[s.Dim]%(s.Parts*s.Size) != 0:
		return fmt.Errorf("manifest: tensor %q: dim %d of %v is not %d parts × %d pieces", t.Name, s.Dim, s.Full, s.Parts, s.Size)
	}
	if !slices.Equal(s.Shape(), t.Shape) {
		return fmt.Errorf("manifest: tensor %q: shape %v is not a 1/%d piece of %v along dim %d", t.Name, t.Shape, s.Size, s.Full, s.Dim)
	}
	return nil
}

// fitsInt reports whether the product of shape's (non-negative) dimensions
// fits in an int, so that prod does not wrap around.
func fitsInt(shape []int) bool {
	n := 1
	for _, d := range shape {
		if d != 0 && n > math.MaxInt/d {
			return false
		}
		n *= d
	}
	return true
}

func prod(shape []int) int {
	if len(shape) == 0 {
		return 0
	}
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
