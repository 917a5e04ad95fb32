package model

import (
	"fmt"
	"strings"

	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
)

// Hugging Face's GPT-2 (GPT2Model / GPT2LMHeadModel, the hub's gpt2
// model.safetensors) names tensors as nanoGPT does without the
// "transformer." prefix, and stores the four projections as Conv1D weights,
// [in, out] where nanoGPT's nn.Linear holds [out, in]. It also carries the
// attention's causal-mask buffers (attn.bias, attn.masked_bias), which are not
// parameters.

// conv1D names the GPT-2 projections stored transposed in Hugging Face's layout.
var conv1D = []string{"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}

func isConv1D(name string) bool {
	for _, s := range conv1D {
		if strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}

// IsHFGPT2 reports whether f holds GPT-2 weights in Hugging Face's layout:
// its fused attention projection is [C, 3C] (Conv1D), not nanoGPT's [3C, C].
func IsHFGPT2(f *safetensors.File) bool {
	for _, name := range []string{"h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.weight"} {
		if t, ok := f.Get(name); ok && len(t.Shape) == 2 && t.Shape[1] == 3*t.Shape[0] {
			return true
		}
	}
	return false
}

// FromHFGPT2 converts GPT-2 weights in Hugging Face's layout to nanoGPT's
// (the layout Import reads): names get the "transformer." prefix, Conv1D
// weights are transposed, mask buffers are dropped. lm_head.weight, tied to
// wte, is kept for Import to check.
func FromHFGPT2(f *safetensors.File) *safetensors.File {
	out := &safetensors.File{Metadata: f.Metadata}
	for _, t := range f.Tensors {
		name := t.Name
		if strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") {
			continue // causal-mask buffers
		}
		if name != "lm_head.weight" && !strings.HasPrefix(name, "transformer.") {
			name = "transformer." + name
		}
		if isConv1D(name) && len(t.Shape) == 2 {
			t = transpose(t)
		}
		t.Name = name
		out.Tensors = append(out.Tensors, t)
	}
	return out
}

// ToHFGPT2 converts nanoGPT-layout GPT tensors to Hugging Face's GPT-2
// layout (the inverse of FromHFGPT2; no mask buffers are written).
func ToHFGPT2(ts []safetensors.Tensor) []safetensors.Tensor {
	out := make([]safetensors.Tensor, 0, len(ts))
	for _, t := range ts {
		name := strings.TrimPrefix(t.Name, "transformer.")
		if isConv1D(t.Name) && len(t.Shape) == 2 {
			t = transpose(t)
		}
		t.Name = name
		out = append(out, t)
	}
	return out
}

func transpose(t safetensors.Tensor) safetensors.Tensor {
	r, c := t.Shape[0], t.Shape[1]
	d := make([]float32, len(t.Data))
	for i := range r {
		for j := range c {
			d[j*r+i] = t.Data[i*c+j]
		}
	}
	return safetensors.Tensor{Name: t.Name, Shape: []int{c, r}, Data: d}
}

// LoadWeights reads a .safetensors file of whole (unsharded) weights in
// nanoGPT's layout or, for GPT, Hugging Face's GPT-2 layout, into p. A
// tensor-parallel p takes its rank's piece of each sharded tensor. All
// problems are reported together and leave p unchanged (see Import).
func LoadWeights(path string, p *Params) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load weights %s: %w", path, err)
	}
	if IsHFGPT2(f) {
		f = FromHFGPT2(f)
	}
	if err := importWhole(p, f); err != nil {
		return fmt.Errorf("load weights %s: %w", path, err)
	}
	return nil
}

// importWhole is Import for whole tensors into p, which may hold TP pieces.
func importWhole(p *Params, f *safetensors.File) error {
	sharded := false
	for _, v := range p.Views {
		sharded = sharded || v.Shard != nil
	}
	if !sharded {
		return Import(p, f)
	}
	// check against the whole shapes through a whole-shaped twin, then copy pieces
	whole := &Params{Views: make([]View, len(p.Views)), Aliases: p.Aliases, index: p.index}
	n := 0
	for i, v := range p.Views {
		w := v
		w.Shard, w.Offset = nil, n
		if v.Shard != nil {
			w.Shape = v.Shard.Full
		}
		whole.Views[i] = w
		n += w.Size()
	}
	whole.Data = make([]float32, n)
	if err := Import(whole, f); err != nil {
		return err
	}
	for i, v := range p.Views {
		src, dst := whole.Value(whole.Views[i]), p.Value(v)
		if v.Shard == nil {
			copy(dst, src)
			continue
		}
		v.Shard.Walk(func(lo, fo, n int) { copy(dst[lo:lo+n], src[fo:fo+n]) })
	}
	return nil
}
