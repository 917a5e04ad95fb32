package kernels

import (
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
)

// parallelMinFlops is the size (m·n·k multiply-adds) below which a call runs
// on the calling goroutine alone: handing work to the pool costs a few
// microseconds, about what 64³ multiply-adds take on one core.
const parallelMinFlops = 64 * 64 * 64

// Panic messages, worded as gonum's.
const (
	badTranspose = "blas: illegal transpose"
	mLT0         = "blas: m < 0"
	nLT0         = "blas: n < 0"
	kLT0         = "blas: k < 0"
	badLdA       = "blas: bad leading dimension of A"
	badLdB       = "blas: bad leading dimension of B"
	badLdC       = "blas: bad leading dimension of C"
	shortA       = "blas: insufficient length of a"
	shortB       = "blas: insufficient length of b"
	shortC       = "blas: insufficient length of c"
)

// gemmArgs is one Sgemm call, row-major as in gonum:
// C (m×n, stride ldc) = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n.
type gemmArgs struct {
	tA, tB  bool
	m, n, k int
	alpha   float32
	a       []float32
	lda     int
	b       []float32
	ldb     int
	beta    float32
	c       []float32
	ldc     int
}

// call is a pooled gemmArgs plus the completion signal of its pool parts.
type call struct {
	args gemmArgs
	kern *microKernel
	left atomic.Int32  // parts not yet finished by the pool
	done chan struct{} // receives once when left reaches zero via a worker
}

// task is one rectangle C[m0:m1, n0:n1] of a call, handed to a pool worker.
type task struct {
	c              *call
	m0, m1, n0, n1 int
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, as
// gonum's blas.Float32. When beta is zero C is not read (NaNs in C do not
// propagate).
func (im *Impl) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if tA != blas.NoTrans && tA != blas.Trans && tA != blas.ConjTrans {
		panic(badTranspose)
	}
	if tB != blas.NoTrans && tB != blas.Trans && tB != blas.ConjTrans {
		panic(badTranspose)
	}
	if m < 0 {
		panic(mLT0)
	}
	if n < 0 {
		panic(nLT0)
	}
	if k < 0 {
		panic(kLT0)
	}
	transA, transB := tA != blas.NoTrans, tB != blas.NoTrans
	rowA, colA := m, k
	if transA {
		rowA, colA = k, m
	}
	if lda < max(1, colA) {
		panic(badLdA)
	}
	rowB, colB := k, n
	if transB {
		rowB, colB = n, k
	}
	if ldb < max(1, colB) {
		panic(badLdB)
	}
	if ldc < max(1, n) {
		panic(badLdC)
	}
	if m == 0 || n == 0 {
		return
	}
	if len(a) < lda*(rowA-1)+colA {
		panic(shortA)
	}
	if len(b) < ldb*(rowB-1)+colB {
		panic(shortB)
	}
	if len(c) < ldc*(m-1)+n {
		panic(shortC)
	}
	if (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	if im.kern == nil {
		im.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	g := gemmArgs{tA: transA, tB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	kern := im.pick(m, n)
	parts := 1
	if im.threads > 1 && m*n*k >= parallelMinFlops {
		parts = im.threads
	}
	// Split C into parts rectangles along the dimension that balances
	// better (N on ties: A's row-copy packing is the cheaper one to repeat).
	// Each part is an independent GEMM with its own packing; re-packing the
	// shared operand costs O(k·(m or n)) against O(m·n·k/parts) arithmetic.
	mTiles, nTiles := ceilDiv(m, kern.mr), ceilDiv(n, kern.nr)
	splitM := balance(mTiles, parts) > balance(nTiles, parts)
	if splitM {
		parts = min(parts, mTiles)
	} else {
		parts = min(parts, nTiles)
	}
	if parts <= 1 {
		ws := im.spaces.Get().(*workspace)
		gemmRect(kern, ws, &g, 0, m, 0, n)
		im.spaces.Put(ws)
		return
	}
	cl := im.calls.Get().(*call)
	cl.args = g
	cl.kern = kern
	if cl.done == nil {
		cl.done = make(chan struct{}, 1)
	}
	rect := func(i int) task {
		if splitM {
			lo, hi := splitRange(mTiles, parts, i)
			return task{c: cl, m0: lo * kern.mr, m1: min(hi*kern.mr, m), n0: 0, n1: n}
		}
		lo, hi := splitRange(nTiles, parts, i)
		return task{c: cl, m0: 0, m1: m, n0: lo * kern.nr, n1: min(hi*kern.nr, n)}
	}
	// Hand parts 1.. to the pool while it has room; the caller runs part 0
	// and whatever the pool could not take.
	// left counts every part the pool might get; the parts it did not get
	// are subtracted afterwards, so exactly one party sees it reach zero.
	cl.left.Store(int32(parts - 1))
	sent := 1
	im.mu.RLock()
	if !im.closed {
	send:
		for ; sent < parts; sent++ {
			select {
			case im.tasks <- rect(sent):
			default:
				break send
			}
		}
	}
	im.mu.RUnlock()
	// Whoever takes left to zero is last: a worker then signals done; the
	// caller (subtracting the parts it kept) then knows not to wait.
	unsent := int32(parts - sent)
	waitPool := unsent == 0 || cl.left.Add(-unsent) != 0
	ws := im.spaces.Get().(*workspace)
	t := rect(0)
	gemmRect(kern, ws, &cl.args, t.m0, t.m1, t.n0, t.n1)
	for i := sent; i < parts; i++ {
		t := rect(i)
		gemmRect(kern, ws, &cl.args, t.m0, t.m1, t.n0, t.n1)
	}
	// While parts are outstanding, run queued tasks (ours or other callers')
	// rather than sleep: a part no worker has picked up yet (its core busy
	// elsewhere) is then done here.
	tasks := im.tasks
	for waitPool {
		select {
		case <-cl.done:
			waitPool = false
		case t, ok := <-tasks:
			if !ok {
				tasks = nil // closed: only done can arrive now
				continue
			}
			runTask(ws, t)
		}
	}
	im.spaces.Put(ws)
	cl.args, cl.kern = gemmArgs{}, nil
	im.calls.Put(cl)
}

// worker runs tasks with its own buffers ws until the pool is closed.
func (im *Impl) worker(ws *workspace) {
	defer im.wg.Done()
	for t := range im.tasks {
		runTask(ws, t)
	}
}

// runTask computes one part of a call and signals the call's owner if it was
// the last outstanding part.
func runTask(ws *workspace, t task) {
	gemmRect(t.c.kern, ws, &t.c.args, t.m0, t.m1, t.n0, t.n1)
	if t.c.left.Add(-1) == 0 {
		t.c.done <- struct{}{}
	}
}

// narrowGain is how much better the narrow (AVX2 6×16) kernel must tile a
// shape than the AVX-512 14×32 one to be picked: the wide kernel needs fewer
// loads per FMA and runs ~10 % faster on full tiles, while its edge tiles go
// through a scratch tile and cost more than their padding.
const narrowGain = 1.12

// pick returns the micro-kernel for an m×n C: the path's own, or on the
// AVX512 path the AVX2 one when it wastes clearly less on padding (narrow
// outputs such as n = 16 or 48 in attention).
func (im *Impl) pick(m, n int) *microKernel {
	k, nk := im.kern, im.narrow
	if nk == nil {
		return k
	}
	cover := func(k *microKernel) float64 {
		return float64(m) * float64(n) / float64(ceilDiv(m, k.mr)*k.mr*ceilDiv(n, k.nr)*k.nr)
	}
	if cover(nk) > narrowGain*cover(k) {
		return nk
	}
	return k
}

// balance is the fraction of parts·(largest share) that splitting tiles into
// parts shares keeps busy.
func balance(tiles, parts int) float64 {
	if tiles < parts {
		return float64(tiles) / float64(parts)
	}
	return float64(tiles) / float64(parts*ceilDiv(tiles, parts))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// splitRange returns part i of n items split into parts near-equal ranges.
func splitRange(n, parts, i int) (lo, hi int) {
	q, r := n/parts, n%parts
	lo = i*q + min(i, r)
	hi = lo + q
	if i < r {
		hi++
	}
	return lo, hi
}
