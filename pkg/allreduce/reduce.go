package allreduce

import (
	"unsafe"

	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// Op is a reduction operator.
type Op int

const (
	// Sum adds the contributions of all ranks.
	Sum Op = iota
	// Avg adds the contributions of all ranks and divides by the group size.
	Avg
)

func (o Op) String() string {
	switch o {
	case Sum:
		return "sum"
	case Avg:
		return "avg"
	}
	return "op?"
}

// Part returns the bounds [lo, hi) of part i when a buffer of length n is split
// into size near-equal contiguous parts (the first n%size parts are one longer).
// ReduceScatter and AllGather use this layout: rank i owns part i.
// It is parallel.Split, the project's one split.
func Part(n, size, i int) (lo, hi int) { return parallel.Split(n, size, i) }

// addTo does dst[i] += src[i]; len(src) must be len(dst). It is vecmath.Add
// (vectorised where the CPU allows; the same bits as the scalar sums), but a
// Go loop under -race (raceBuild).
func addTo(dst, src []float32) {
	if raceBuild {
		src = src[:len(dst)]
		for i := range dst {
			dst[i] += src[i]
		}
		return
	}
	vecmath.Add(dst, dst, src)
}

// divide does x[i] /= d.
func divide(x []float32, d float32) {
	for i := range x {
		x[i] /= d
	}
}

// asBytes views a float32 slice as its little-endian bytes (every platform Go
// targets for this project is little-endian).
func asBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*4)
}
