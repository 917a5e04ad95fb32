package kernels

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Path names the SGEMM code path an Impl runs.
type Path int

const (
	// Auto picks the fastest path the CPU supports: AVX512, then AVX2, then Generic.
	Auto Path = iota
	// AVX512 uses the 14×32 AVX-512F micro-kernel.
	AVX512
	// AVX2 uses the 6×16 AVX2+FMA micro-kernel.
	AVX2
	// Generic delegates to gonum's pure-Go Sgemm.
	Generic
	// OpenBLAS calls OpenBLAS's cblas_sgemm (cgo). Only in binaries built
	// with -tags openblas; otherwise New fails with ErrUnsupported.
	OpenBLAS
)

// String returns the lower-case name of p, as accepted by ParsePath.
func (p Path) String() string {
	switch p {
	case Auto:
		return "auto"
	case AVX512:
		return "avx512"
	case AVX2:
		return "avx2"
	case Generic:
		return "generic"
	case OpenBLAS:
		return "openblas"
	}
	return fmt.Sprintf("Path(%d)", int(p))
}

// ParsePath parses "auto", "avx512", "avx2", "generic" or "openblas" (case-insensitive;
// the empty string means Auto). Command-line programs use it to read an
// environment variable such as RINGMASTER_GEMM.
func ParsePath(s string) (Path, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return Auto, nil
	case "avx512", "avx-512":
		return AVX512, nil
	case "avx2":
		return AVX2, nil
	case "generic", "go", "gonum":
		return Generic, nil
	case "openblas":
		return OpenBLAS, nil
	}
	return Auto, fmt.Errorf("kernels: unknown path %q (want auto, avx512, avx2, generic or openblas)", s)
}

// ErrUnsupported is returned by New when a forced Path needs CPU features this
// machine (or this build's architecture) lacks, or a backend this binary was
// built without (OpenBLAS).
var ErrUnsupported = errors.New("kernels: path not supported on this machine")

// Supported reports whether path p can run on this machine. Auto and Generic
// are always supported.
func Supported(p Path) bool {
	switch p {
	case Auto, Generic:
		return true
	case AVX512:
		return hasAVX512()
	case AVX2:
		return hasAVX2()
	case OpenBLAS:
		return openblasBuilt
	}
	return false
}

// Options configures New.
type Options struct {
	// Threads is the number of cores one Sgemm call may use (the calling
	// goroutine plus Threads-1 pool workers). 0 means runtime.GOMAXPROCS(0).
	Threads int
	// Path forces a code path; Auto (the zero value) picks the best supported.
	Path Path
	// Precision BF16 makes Sgemm compute as GemmBF16 (operands rounded to
	// bf16, fp32 accumulation): mixed-precision training. FP32 (the zero
	// value) is plain single precision.
	Precision Precision
	// BF16Portable forces GemmBF16's portable path (bf16-rounded copies
	// through the fp32 kernels) even on an AVX512_BF16 CPU: tests use it.
	BF16Portable bool
}

// Precision is the arithmetic an Impl's Sgemm does.
type Precision int

const (
	// FP32 is single precision throughout.
	FP32 Precision = iota
	// BF16 rounds the operands to bfloat16 and accumulates in fp32.
	BF16
)

// String returns "fp32" or "bf16", as accepted by ParsePrecision.
func (p Precision) String() string {
	switch p {
	case FP32:
		return "fp32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// ParsePrecision parses "fp32" (or "") and "bf16", case-insensitive.
func ParsePrecision(s string) (Precision, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "fp32", "float32":
		return FP32, nil
	case "bf16", "bfloat16":
		return BF16, nil
	}
	return FP32, fmt.Errorf("kernels: unknown precision %q (want fp32 or bf16)", s)
}

// Impl implements gonum's blas.Float32 with a fast Sgemm; every other routine
// is gonum's own (embedded). Pass it to a model in model.Compute. It is safe for
// concurrent use. Close stops its worker pool; after Close, Sgemm still works
// on the calling goroutine only.
type Impl struct {
	gonum.Implementation

	path    Path
	threads int
	kern    *microKernel // nil for Generic
	narrow  *microKernel // AVX512 path: the AVX2 kernel, for shapes it tiles better; else nil

	precision  Precision
	bf16Native bool // GemmBF16 runs the VDPBF16PS kernel

	closed atomic.Bool
	boxes  []mailbox      // one per pool worker
	wg     sync.WaitGroup // pool workers

	spaces sync.Pool // *workspace for calling goroutines
	calls  sync.Pool // *call
}

var _ blas.Float32 = (*Impl)(nil)

// New returns an Impl for opts. It fails with an error wrapping
// ErrUnsupported if opts.Path is forced to a path this CPU cannot run.
func New(opts Options) (*Impl, error) {
	p := opts.Path
	switch p {
	case Auto:
		switch {
		case hasAVX512():
			p = AVX512
		case hasAVX2():
			p = AVX2
		default:
			p = Generic
		}
	case AVX512, AVX2, Generic:
		if !Supported(p) {
			return nil, fmt.Errorf("%w: %s", ErrUnsupported, p)
		}
	case OpenBLAS:
		if !Supported(p) {
			return nil, fmt.Errorf("%w: %s: this binary was built without it; rebuild with -tags openblas (needs cgo and libopenblas-dev)", ErrUnsupported, p)
		}
	default:
		return nil, fmt.Errorf("kernels: invalid path %d", int(p))
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if p == OpenBLAS {
		if err := openblasInit(threads); err != nil {
			return nil, err
		}
		return &Impl{path: p, threads: threads, precision: opts.Precision}, nil
	}
	if opts.Precision != FP32 && opts.Precision != BF16 {
		return nil, fmt.Errorf("kernels: invalid precision %d", int(opts.Precision))
	}
	im := &Impl{path: p, threads: threads, kern: kernelFor(p), precision: opts.Precision,
		bf16Native: p == AVX512 && hasBF16() && !opts.BF16Portable}
	if p == AVX512 && hasAVX2() {
		im.narrow = kernelFor(AVX2)
	}
	if im.kern != nil {
		k, n := im.kern, im.narrow
		im.spaces.New = func() any { return newWorkspace(k, n) }
		im.calls.New = func() any { return new(call) }
		if threads > 1 {
			im.boxes = make([]mailbox, threads-1)
			for i := range im.boxes {
				im.boxes[i].wake = make(chan struct{}, 1)
				im.wg.Add(1)
				go im.worker(newWorkspace(k, n), &im.boxes[i])
			}
		}
	}
	return im, nil
}

// Path reports the code path this Impl runs (never Auto).
func (im *Impl) Path() Path { return im.path }

// Threads reports the maximum number of cores one call uses.
func (im *Impl) Threads() int { return im.threads }

// Close stops the worker pool and waits for the workers to exit. It is
// idempotent. Calls made after Close run on the calling goroutine alone.
func (im *Impl) Close() error {
	if im.closed.Swap(true) {
		return nil
	}
	for i := range im.boxes {
		select {
		case im.boxes[i].wake <- struct{}{}:
		default: // a token is already there: the worker will see closed
		}
	}
	im.wg.Wait()
	return nil
}
