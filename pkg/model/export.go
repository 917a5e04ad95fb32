package model

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

// Tensors returns one safetensors tensor per view, in layout order, named as
// the view (nanoGPT/HF state_dict names). Data aliases p.Data: no copy.
// Tied aliases (lm_head.weight) are not included: safetensors stores a shared
// tensor once.
func (p *Params) Tensors() []safetensors.Tensor {
	ts := make([]safetensors.Tensor, len(p.Views))
	for i, v := range p.Views {
		ts[i] = safetensors.Tensor{Name: v.Name, Shape: v.Shape, Data: p.Value(v)}
	}
	return ts
}

// Export writes the parameters of p as safetensors to w.
func Export(w io.Writer, p *Params, metadata map[string]string) error {
	if err := safetensors.Encode(w, p.Tensors(), metadata); err != nil {
		return fmt.Errorf("export parameters: %w", err)
	}
	return nil
}

// SaveFile writes the parameters of p to a .safetensors file.
func SaveFile(path string, p *Params, metadata map[string]string) error {
	if err := safetensors.WriteFile(path, p.Tensors(), metadata); err != nil {
		return fmt.Errorf("export parameters to %s: %w", path, err)
	}
	return nil
}

// Import copies the tensors of f into p. Every view must be present with its
// exact shape, and every tensor in f must be a view or an alias of one; an
// alias (lm_head.weight) may be present and must then equal its target.
// All problems are reported together, each naming the tensor and the
// expected shape; on error p is left unchanged.
func Import(p *Params, f *safetensors.File) error {
	var errs []error
	for _, v := range p.Views {
		t, ok := f.Get(v.Name)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("tensor %q: missing; want shape %v", v.Name, v.Shape))
		case !slices.Equal(t.Shape, v.Shape) || len(t.Data) != v.Size():
			errs = append(errs, fmt.Errorf("tensor %q: shape %v, want %v", v.Name, t.Shape, v.Shape))
		}
	}
	for _, t := range f.Tensors {
		if _, isView := p.indexOf(t.Name); isView {
			continue
		}
		target, isAlias := p.Aliases[t.Name]
		if !isAlias {
			errs = append(errs, fmt.Errorf("tensor %q: unexpected; this model has no such parameter", t.Name))
			continue
		}
		v, _ := p.Lookup(target)
		src, ok := f.Get(target)
		if !slices.Equal(t.Shape, v.Shape) {
			errs = append(errs, fmt.Errorf("tensor %q (tied to %q): shape %v, want %v", t.Name, target, t.Shape, v.Shape))
		} else if ok && !slices.Equal(t.Data, src.Data) {
			errs = append(errs, fmt.Errorf("tensor %q: differs from %q, but the model ties them; export them equal", t.Name, target))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("import parameters: %w", errors.Join(errs...))
	}
	for _, v := range p.Views {
		t, _ := f.Get(v.Name)
		copy(p.Value(v), t.Data)
	}
	return nil
}

// LoadFile reads a .safetensors file into p (see Import).
func LoadFile(path string, p *Params) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return fmt.Errorf("import parameters from %s: %w", path, err)
	}
	if err := Import(p, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func (p *Params) indexOf(name string) (int, bool) {
	i, ok := p.index[name]
	return i, ok
}
