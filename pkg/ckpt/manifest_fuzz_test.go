package ckpt

import (
	"encoding/json"
	"math/bits"
	"slices"
	"testing"
)

// FuzzCheckManifest: a manifest read from a checkpoint header or a peer is
// either refused or describes tensors that really lie, without overlap and
// without integer overflow, inside the buffer; an accepted manifest can be
// cut from its whole-model layout (ReshardFlat) without panicking, and each
// whole tensor comes back unchanged.
func FuzzCheckManifest(f *testing.F) {
	f.Add([]byte(`[{"name":"a","offset":0,"shape":[2,3]},{"name":"b","offset":6,"shape":[4]}]`), 10)
	f.Add([]byte(`[{"name":"w","offset":0,"shape":[4,2],"split":{"Full":[4,4],"Dim":1,"Parts":1,"Rank":1,"Size":2}}]`), 8)
	f.Add([]byte(`[{"name":"a","offset":0,"shape":[4294967296,4294967296]}]`), 16)
	f.Add([]byte(`[{"name":"a","offset":-4,"shape":[4]}]`), 4)
	f.Add([]byte(`[{"name":"a","offset":9223372036854775800,"shape":[100]}]`), 4)
	f.Add([]byte(`[{"name":"a","offset":0,"shape":[]},{"name":"a","offset":0,"shape":[1]}]`), 1)
	f.Fuzz(func(t *testing.T, js []byte, n int) {
		var m []Tensor
		if json.Unmarshal(js, &m) != nil || n < 0 || n > 1<<12 {
			return
		}
		if checkManifest(m, n) != nil {
			return
		}
		end := 0
		for _, x := range m {
			size, ok := exactSize(x.Shape)
			switch {
			case !ok || size != x.Size():
				t.Fatalf("tensor %q: shape %v accepted with size %d (overflows)", x.Name, x.Shape, x.Size())
			case x.Offset < end || x.Offset > n || size > n-x.Offset:
				t.Fatalf("tensor %q [%d,+%d) accepted outside [%d,%d)", x.Name, x.Offset, size, end, n)
			}
			end = x.Offset + size
		}
		full := FullManifest(m)
		fullLen := bufLen(full)
		for _, x := range full {
			if _, ok := exactSize(x.Shape); !ok {
				return // a split too large to gather: not this target's concern
			}
		}
		if fullLen > 1<<16 || checkManifest(full, fullLen) != nil {
			return
		}
		buf := make([]float32, fullLen)
		for i := range buf {
			buf[i] = float32(i)
		}
		local, err := ReshardFlat(buf, full, m)
		if err != nil {
			t.Fatalf("an accepted manifest does not cut from its own whole layout: %v", err)
		}
		for i, x := range m {
			if x.Split == nil && !slices.Equal(local[x.Offset:x.Offset+x.Size()], buf[full[i].Offset:full[i].Offset+full[i].Size()]) {
				t.Fatalf("whole tensor %q changed in the cut", x.Name)
			}
		}
	})
}

// exactSize is the product of shape's dimensions, false on overflow or a
// negative dimension (prod's convention: an empty shape has size 0).
func exactSize(shape []int) (int, bool) {
	if len(shape) == 0 {
		return 0, true
	}
	p := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(p, uint64(d))
		if hi != 0 || lo > 1<<62 {
			return 0, false
		}
		p = lo
	}
	return int(p), true
}
