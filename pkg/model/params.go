package model

import (
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
)

// View names one tensor inside the flat parameter buffer: Data[Offset :
// Offset+Size()] reshaped to Shape (row-major). The zero View means "absent"
// (for example a Linear without bias).
type View struct {
	Name   string
	Offset int
	Shape  []int
	Decay  bool // a ≥2-D weight: AdamW applies weight decay (nanoGPT configure_optimizers)

	// Shard is nil when the view holds the whole tensor; under tensor
	// parallelism it says which piece of the whole tensor it holds (shard.go).
	Shard *Shard
}

// Size is the number of elements of the view (0 for the zero View).
func (v View) Size() int {
	if len(v.Shape) == 0 {
		return 0
	}
	n := 1
	for _, d := range v.Shape {
		n *= d
	}
	return n
}

// End is Offset+Size().
func (v View) End() int { return v.Offset + v.Size() }

// Present reports whether the view names a tensor (false for the zero View).
func (v View) Present() bool { return v.Name != "" }

// Params holds every parameter of a model in one flat buffer with a manifest
// of named views; Grad mirrors Data element for element. Data and Grad are
// allocated once by a Builder and must never be replaced, only written into
// (layers hold views, and other rooms hold sub-slices of the buffers).
type Params struct {
	Data, Grad []float32
	Views      []View // in layout order; Views[i].Offset increases with i

	// Aliases maps extra tensor names to the view that holds their data
	// (tied weights): "lm_head.weight" → "transformer.wte.weight" for GPT.
	Aliases map[string]string

	// BF16 is mixed-precision training (train.precision: bf16): every
	// Linear's products — forward, input gradient and weight gradient, LM
	// head included — round their two inputs to bfloat16 and accumulate in
	// fp32 (kernels.GemmBF16). Data (the master weights), Grad (accumulated
	// in fp32, C of the weight-gradient product), activations, LayerNorm,
	// softmax, attention, the loss and the optimizer stay fp32.
	BF16 bool

	gemm  blas.Float32 // every product of this model (WithCompute); nil: gonum's reference
	index map[string]int
}

// Builder lays out named views one after another and then allocates the
// flat buffers once.
type Builder struct {
	views   []View
	aliases map[string]string
	n       int
}

// Add appends a tensor of the given shape and returns its view. Tensors with
// two or more dimensions get weight decay (nanoGPT's rule).
func (b *Builder) Add(name string, shape ...int) View {
	v := View{Name: name, Offset: b.n, Shape: append([]int(nil), shape...), Decay: len(shape) >= 2}
	b.views = append(b.views, v)
	b.n += v.Size()
	return v
}

// Alias records that name is another name of the already added view target.
func (b *Builder) Alias(name, target string) {
	if b.aliases == nil {
		b.aliases = map[string]string{}
	}
	b.aliases[name] = target
}

// Build allocates Data and Grad (zeroed) and returns the Params. It fails on a
// duplicate name or an alias whose target does not exist.
func (b *Builder) Build() (*Params, error) {
	p := &Params{
		Data:    make([]float32, b.n),
		Grad:    make([]float32, b.n),
		Views:   b.views,
		Aliases: b.aliases,
		index:   make(map[string]int, len(b.views)),
	}
	for i, v := range b.views {
		if _, dup := p.index[v.Name]; dup {
			return nil, fmt.Errorf("params: duplicate tensor name %q", v.Name)
		}
		p.index[v.Name] = i
	}
	for a, t := range b.aliases {
		if _, ok := p.index[t]; !ok {
			return nil, fmt.Errorf("params: alias %q points at unknown tensor %q", a, t)
		}
		if _, clash := p.index[a]; clash {
			return nil, fmt.Errorf("params: alias %q is also a tensor name", a)
		}
	}
	return p, nil
}

// Lookup returns the view with the given name (aliases resolve to their target).
func (p *Params) Lookup(name string) (View, bool) {
	if t, ok := p.Aliases[name]; ok {
		name = t
	}
	i, ok := p.index[name]
	if !ok {
		return View{}, false
	}
	return p.Views[i], true
}

// Value returns the parameter values of v, a sub-slice of Data (nil for the zero View).
func (p *Params) Value(v View) []float32 { return p.Data[v.Offset:v.End():v.End()] }

// Gradient returns the gradient of v, a sub-slice of Grad (nil for the zero View).
func (p *Params) Gradient(v View) []float32 { return p.Grad[v.Offset:v.End():v.End()] }

// ZeroGrad sets every gradient to 0.
func (p *Params) ZeroGrad() { clear(p.Grad) }

// NumParams is the number of scalar parameters (tied tensors counted once).
func (p *Params) NumParams() int { return len(p.Data) }

// initNormal fills v with N(0, std²) from rng.
func (p *Params) initNormal(v View, std float64, rng *rand.Rand) {
	for i, d := 0, p.Value(v); i < len(d); i++ {
		d[i] = float32(rng.NormFloat64() * std)
	}
}

// initConst fills v with c.
func (p *Params) initConst(v View, c float32) {
	for i, d := 0, p.Value(v); i < len(d); i++ {
		d[i] = c
	}
}

// newRNG is the package's deterministic generator: PCG seeded from seed.
func newRNG(seed int64, stream uint64) *rand.Rand {
	r, _ := newRNGSource(seed, stream)
	return r
}
