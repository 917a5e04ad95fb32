package kernels

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	"gonum.org/v1/gonum/blas"
)

func TestTuneAB(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	im, _ := New(Options{Path: AVX512, Threads: 1})
	defer im.Close()
	kern := im.kern
	type v struct {
		name string
		f    func() float64
	}
	gemm := func(im *Impl, m, k, n int, tB blas.Transpose) func() float64 {
		a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		ldb := n
		if tB == blas.Trans {
			ldb = k
		}
		return func() float64 {
			t0 := threadCPU()
			for i := 0; i < max(1, 30*768*128*384/(m*n*k)); i++ {
				im.Sgemm(blas.NoTrans, tB, m, n, k, 1, a, k, b, ldb, 0, c, n)
			}
			return 2 * float64(m*n*k) * float64(max(1, 30*768*128*384/(m*n*k))) / (threadCPU() - t0) / 1e9
		}
	}
	micro := func() float64 {
		kc := 256
		a, bp, c := make([]float32, kern.mr*kc), make([]float32, kern.nr*kc), make([]float32, kern.mr*kern.nr)
		t0 := threadCPU()
		for i := 0; i < 3000; i++ {
			kern.fn(kc, &a[0], kern.mr, &bp[0], kern.nr, &c[0], kern.nr, 1, 1)
		}
		return 2 * float64(kern.mr*kern.nr*kc) * 3000 / (threadCPU() - t0) / 1e9
	}
	mk := func(direct int) *Impl {
		x, _ := New(Options{Path: AVX512, Threads: 1})
		k2 := *x.kern
		k2.direct = direct
		x.kern = &k2
		x.spaces.New = func() any { return newWorkspace(&k2) }
		return x
	}
	var vs []v
	_, _, _ = mk, gemm, micro
	gemm4 := func(im *Impl, m, k, n int, tA, tB blas.Transpose) func() float64 {
		a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		lda, ldb := k, n
		if tA == blas.Trans {
			lda = m
		}
		if tB == blas.Trans {
			ldb = k
		}
		it := max(1, 30*768*128*384/(m*n*k))
		return func() float64 {
			t0 := threadCPU()
			for i := 0; i < it; i++ {
				im.Sgemm(tA, tB, m, n, k, 1, a, lda, b, ldb, 0, c, n)
			}
			return 2 * float64(m*n*k) * float64(it) / (threadCPU() - t0) / 1e9
		}
	}
	for _, sh := range [][3]int{{768, 128, 384}, {128, 768, 384}, {64, 16, 64}, {64, 64, 16}} {
		for _, tt := range [][2]blas.Transpose{{blas.NoTrans, blas.NoTrans}, {blas.NoTrans, blas.Trans}, {blas.Trans, blas.NoTrans}, {blas.Trans, blas.Trans}} {
			vs = append(vs, v{fmt.Sprintf("%c%c %v", tt[0], tt[1], sh), gemm4(im, sh[0], sh[1], sh[2], tt[0], tt[1])})
		}
	}
	res := make([][]float64, len(vs))
	for r := 0; r < 15; r++ {
		for i, x := range vs {
			res[i] = append(res[i], x.f())
		}
	}
	for i, x := range vs {
		slices.Sort(res[i])
		fmt.Printf("%-16s median %.1f max %.1f\n", x.name, res[i][len(res[i])/2], res[i][len(res[i])-1])
	}
}

func threadCPU() float64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec) + float64(ts.Nsec)*1e-9
}
