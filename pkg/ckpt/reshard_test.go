package ckpt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel/tp"
)

var reshardConfigs = []struct {
	name string
	cfg  model.Config
}{
	{"gpt", model.Config{Arch: model.ArchGPT, NLayer: 2, NHead: 4, NEmbd: 16, BlockSize: 8, VocabSize: 11, Bias: true}.WithDefaults()},
	{"bert", model.Config{Arch: model.ArchBERT, NLayer: 2, NHead: 4, NEmbd: 16, BlockSize: 8, VocabSize: 13, NClasses: 3}.WithDefaults()},
	{"encdec", model.Config{Arch: model.ArchEncDec, NLayer: 1, NDecLayer: 2, NHead: 4, NEmbd: 16, BlockSize: 8, VocabSize: 12}.WithDefaults()},
}

// noSum is a collective that is never called.
type noSum struct{}

func (noSum) AllReduce(context.Context, []float32, allreduce.Op) error {
	return errors.New("noSum: no collective in this test")
}

// modelShard builds rank of a TP group of size (size 1: the whole model)
// from seed 7 as a checkpoint shard whose moments are 2× and 3× the
// parameters, so they travel with the parameters they belong to.
func modelShard(t testing.TB, cfg model.Config, rank, size int) *Shard {
	t.Helper()
	var opts []model.Option
	if size > 1 {
		g, err := tp.New(rank, size, noSum{}) // never called: nothing runs forward
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, model.WithTensorParallel(g))
	}
	m, err := model.New(cfg, 7, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p := m.Params()
	s := &Shard{Job: "j", Step: 100, Generation: 2, TP: rank, TPSize: size, ModelHash: "h", Iter: 100,
		Manifest: Manifest(p.Views), Data: slices.Clone(p.Data),
		Optim: Optim{Lo: 0, Hi: len(p.Data), M: make([]float32, len(p.Data)), V: make([]float32, len(p.Data)), Steps: 100}}
	for i, x := range p.Data {
		s.Optim.M[i], s.Optim.V[i] = 2*x, 3*x
	}
	return s
}

func groupShards(t testing.TB, cfg model.Config, size int) []*Shard {
	t.Helper()
	ss := make([]*Shard, size)
	for r := range ss {
		ss[r] = modelShard(t, cfg, r, size)
	}
	return ss
}

// sameState fails unless a and b hold bit-identical parameters and moments.
func sameState(t testing.TB, what string, got, want *Shard) {
	t.Helper()
	if !sameBits(got.Data, want.Data) || !sameBits(got.Optim.M, want.Optim.M) || !sameBits(got.Optim.V, want.Optim.V) {
		t.Fatalf("%s: state differs from the reference (%d vs %d parameters)", what, len(got.Data), len(want.Data))
	}
	if got.Optim.Lo != 0 || got.Optim.Hi != len(got.Data) || got.Optim.Steps != want.Optim.Steps {
		t.Fatalf("%s: optimizer [%d,%d) steps %d", what, got.Optim.Lo, got.Optim.Hi, got.Optim.Steps)
	}
}

// The pieces of a model built with tensor parallelism are, by model's
// contract, slices of the whole model from the same seed: gathering them
// must give the whole model bit for bit, and cutting the whole model must
// give each piece.
func TestGatherAndReshardMatchTheModel(t *testing.T) {
	for _, c := range reshardConfigs {
		for _, size := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/tp%d", c.name, size), func(t *testing.T) {
				whole := modelShard(t, c.cfg, 0, 1)
				pieces := groupShards(t, c.cfg, size)
				if got := FullManifest(pieces[0].Manifest); !reflect.DeepEqual(got, whole.Manifest) {
					t.Fatalf("FullManifest of a tp piece:\n got %+v\nwant %+v", got, whole.Manifest)
				}
				// Any order of shards.
				rev := slices.Clone(pieces)
				slices.Reverse(rev)
				g, err := Gather(rev, whole.Manifest)
				if err != nil {
					t.Fatal(err)
				}
				sameState(t, "gather", g, whole)
				if g.TP != 0 || g.TPSize != 1 || g.Step != 100 || g.Iter != 100 || !reflect.DeepEqual(g.Manifest, whole.Manifest) {
					t.Fatalf("gathered shard %+v", g.Info())
				}
				for r, want := range pieces {
					local, err := LocalManifest(pieces[0].Manifest, r, size)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(local, want.Manifest) {
						t.Fatalf("LocalManifest(rank %d of %d) differs from the model's views", r, size)
					}
					got, err := Reshard(whole, local, r, size)
					if err != nil {
						t.Fatal(err)
					}
					sameState(t, fmt.Sprintf("reshard to rank %d", r), got, want)
					if got.TP != r || got.TPSize != size {
						t.Fatalf("resharded shard is tp %d of %d", got.TP, got.TPSize)
					}
				}
			})
		}
	}
}

// A job checkpointed at TP 2 resumes at TP 4 and back: each change of
// layout goes through the whole model, through the store, and loses nothing.
func TestChangeLayoutThroughStore(t *testing.T) {
	cfg := reshardConfigs[0].cfg
	st := openStore(t, Options{ChunkBytes: 1024})
	whole := modelShard(t, cfg, 0, 1)
	two := groupShards(t, cfg, 2)
	for _, s := range two {
		if err := st.Put(s); err != nil {
			t.Fatal(err)
		}
	}
	var loaded []*Shard
	for r := range 2 {
		s, err := st.Get("j", 100, r)
		if err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, s)
	}
	target := FullManifest(loaded[0].Manifest)
	g, err := Gather(loaded, target)
	if err != nil {
		t.Fatal(err)
	}
	var four []*Shard
	for r := range 4 {
		local, err := LocalManifest(loaded[0].Manifest, r, 4)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Reshard(g, local, r, 4)
		if err != nil {
			t.Fatal(err)
		}
		s.Step = 200 // stored as a new checkpoint of the new layout
		if err := st.Put(s); err != nil {
			t.Fatal(err)
		}
		if s, err = st.Get("j", 200, r); err != nil {
			t.Fatal(err)
		}
		four = append(four, s)
	}
	back, err := Gather(four, target)
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, "tp2 → whole → tp4 → whole", back, whole)
}

func TestGatherFlatReshardFlatIdentity(t *testing.T) {
	// A fused (3-part) column split, a row split and a replicated tensor.
	full := []Tensor{
		{Name: "qkv", Offset: 0, Shape: []int{12, 2}},
		{Name: "proj", Offset: 24, Shape: []int{2, 4}},
		{Name: "ln", Offset: 32, Shape: []int{5}},
	}
	buf := make([]float32, 37)
	for i := range buf {
		buf[i] = float32(i)
	}
	for _, size := range []int{1, 2, 4} {
		parts := make([]Part, size)
		for r := range parts {
			m := []Tensor{
				{Name: "qkv", Shape: []int{12 / size, 2}, Split: &Split{Full: []int{12, 2}, Dim: 0, Parts: 3, Rank: r, Size: size}},
				{Name: "proj", Offset: 24 / size, Shape: []int{2, 4 / size}, Split: &Split{Full: []int{2, 4}, Dim: 1, Parts: 1, Rank: r, Size: size}},
				{Name: "ln", Offset: 32 / size, Shape: []int{5}},
			}
			local, err := ReshardFlat(buf, full, m)
			if err != nil {
				t.Fatal(err)
			}
			parts[r] = Part{m, local}
		}
		if size == 2 {
			// rank 1 holds rows 2,3 of each q,k,v block, then proj's column 2..3.
			want := []float32{4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 26, 27, 30, 31, 32, 33, 34, 35, 36}
			if !slices.Equal(parts[1].Data, want) {
				t.Fatalf("rank 1 of 2 = %v, want %v", parts[1].Data, want)
			}
		}
		got, err := GatherFlat(parts, full)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, buf) {
			t.Fatalf("tp %d: gather(reshard(x)) = %v, want %v", size, got, buf)
		}
	}
}

func TestGatherRejectsMismatchedShards(t *testing.T) {
	cfg := reshardConfigs[0].cfg
	target := modelShard(t, cfg, 0, 1).Manifest
	cases := []struct {
		name   string
		shards func() []*Shard
		target []Tensor
		want   string
	}{
		{"missing rank", func() []*Shard { return groupShards(t, cfg, 2)[:1] }, target, "not tp ranks 0..0 of 1"},
		{"duplicate rank", func() []*Shard { s := groupShards(t, cfg, 2); s[1] = s[0]; return s }, target, "not tp ranks"},
		{"different steps", func() []*Shard { s := groupShards(t, cfg, 2); s[1].Step = 99; return s }, target, "step 99"},
		{"different iterations", func() []*Shard { s := groupShards(t, cfg, 2); s[1].Iter = 7; return s }, target, "disagrees"},
		{"range-sharded moments", func() []*Shard {
			s := groupShards(t, cfg, 2)
			s[1].Optim.Lo, s[1].Optim.M, s[1].Optim.V = 1, s[1].Optim.M[1:], s[1].Optim.V[1:]
			return s
		}, target, "moments of [1,"},
		{"target is a piece", func() []*Shard { return groupShards(t, cfg, 2) }, groupShards(t, cfg, 2)[0].Manifest, "is itself a piece"},
		{"target lacks a tensor", func() []*Shard { return groupShards(t, cfg, 2) }, target[1:], "is not in the target"},
		{"target has an extra tensor", func() []*Shard { return groupShards(t, cfg, 2) },
			append(slices.Clone(target), Tensor{Name: "extra", Offset: bufLen(target), Shape: []int{1}}), `"extra" of the target is missing`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Gather(c.shards(), c.target)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Gather: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func TestReshardRejects(t *testing.T) {
	cfg := reshardConfigs[0].cfg
	whole := modelShard(t, cfg, 0, 1)
	pieces := groupShards(t, cfg, 2)
	if _, err := Reshard(pieces[0], pieces[1].Manifest, 1, 2); err == nil || !strings.Contains(err.Error(), "Gather it first") {
		t.Fatalf("Reshard of a piece: %v", err)
	}
	if _, err := Reshard(whole, pieces[1].Manifest, 0, 2); err == nil || !strings.Contains(err.Error(), "piece 1 of 2, want 0 of 2") {
		t.Fatalf("Reshard with another rank's manifest: %v", err)
	}
	if _, err := LocalManifest(pieces[0].Manifest, 0, 3); err == nil || !strings.Contains(err.Error(), "does not split") {
		t.Fatalf("LocalManifest for tp 3 of 4 heads: %v", err)
	}
}
