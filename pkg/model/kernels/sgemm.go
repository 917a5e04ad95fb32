package kernels

import (
	"runtime"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas"

	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
)

// parallelMinFlops is the size (m·n·k multiply-adds) below which a call runs
// on the calling goroutine alone. Posting a call to a worker that is still
// spinning after its last call costs well under a microsecond, and 2¹⁸
// multiply-adds (~64³) take ~5 µs on one core; smaller calls (attention's
// per-head products) are not worth splitting.
const parallelMinFlops = 1 << 18

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

// call is one parallel Sgemm: its arguments and the claim state of its
// parts. Parts are claimed one at a time by whoever gets there first — the
// caller or a pool worker it posted the call to — so a worker the machine
// has not scheduled yet is simply not waited for. Calls are pooled; a
// generation number tells a late worker that the call it was posted is over.
type call struct {
	args   gemmArgs
	kern   *microKernel
	splitM bool // parts split M (else N)
	bf16   bool // the bf16 kernel (gemmRectBF16)
	gen    uint32
	// state packs gen (high 32 bits), the number of parts (bits 16–31) and
	// the next part to claim (low 16 bits).
	state   atomic.Uint64
	pending atomic.Int32 // parts not finished
	// waiting is gen<<2 | 0 (caller not blocked), 1 (caller blocks on done)
	// or 2 (the worker that finished the last part has signalled done).
	waiting atomic.Uint64
	done    chan struct{}
}

// mailbox is how a caller posts a call to one pool worker. A worker spins
// on c for a while after its last call (waking it is then a store, not a
// scheduler round trip) and otherwise parks on wake, having set parked.
type mailbox struct {
	c      atomic.Pointer[call]
	parked atomic.Bool
	wake   chan struct{} // capacity 1
	_      [48]byte      // keep workers' mailboxes on separate cache lines
}

// post offers cl to the worker of box, waking it if it is parked. A call
// still in box that no worker took is replaced: its caller does the parts.
func (box *mailbox) post(cl *call) {
	box.c.Store(cl)
	if box.parked.Load() {
		select {
		case box.wake <- struct{}{}:
		default:
		}
	}
}

// Spinning: a pool worker polls its mailbox (with PAUSE, yielding the P now
// and then so that other goroutines still run) for workerSpin after its
// last part before parking; a caller whose parts are done polls for the
// others for at most callerSpin before blocking. A worker that finds it
// was descheduled while polling (a gap of preemptGap between polls: the
// host is oversubscribed) parks at once, and after each call for calmFor.
const (
	workerSpin = 200 * time.Microsecond
	callerSpin = 100 * time.Microsecond
	preemptGap = 50 * time.Microsecond
	calmFor    = 20 * time.Millisecond
)

// maxParts bounds the parts of one call (they are counted in 16 bits).
const maxParts = 1 << 15

// claim takes the next unclaimed part of generation gen, reporting false
// when there is none (all claimed, or the call has moved on).
func (c *call) claim(gen uint32) (part, parts int, ok bool) {
	for {
		s := c.state.Load()
		if uint32(s>>32) != gen {
			return 0, 0, false
		}
		parts, part = int(s>>16&0xffff), int(s&0xffff)
		if part >= parts {
			return 0, 0, false
		}
		if c.state.CompareAndSwap(s, s+1) {
			return part, parts, true
		}
	}
}

// work runs parts of generation gen until none is left to claim; it reports
// whether it finished the call's last part.
func (c *call) work(ws *workspace, gen uint32) (last bool) {
	for {
		part, parts, ok := c.claim(gen)
		if !ok {
			return false
		}
		g, kern := &c.args, c.kern
		rect := func(m0, m1, n0, n1 int) { gemmRect(kern, ws, g, m0, m1, n0, n1) }
		if c.bf16 {
			rect = func(m0, m1, n0, n1 int) { gemmRectBF16(ws, g, m0, m1, n0, n1) }
		}
		if c.splitM {
			lo, hi := parallel.Split(ceilDiv(g.m, kern.mr), parts, part)
			rect(lo*kern.mr, min(hi*kern.mr, g.m), 0, g.n)
		} else {
			lo, hi := parallel.Split(ceilDiv(g.n, kern.nr), parts, part)
			rect(0, g.m, lo*kern.nr, min(hi*kern.nr, g.n))
		}
		if c.pending.Add(-1) == 0 {
			return true
		}
	}
}

// finish is called by a pool worker that finished the last part of
// generation gen: if the caller has stopped spinning and blocks, wake it.
func (c *call) finish(gen uint32) {
	if c.waiting.CompareAndSwap(uint64(gen)<<2|1, uint64(gen)<<2|2) {
		c.done <- struct{}{}
	}
}

// wait returns once every part of generation gen is finished, spinning for
// a while (the other parts are usually about to end) before blocking: for
// at most callerSpin, and no longer than own, the time the caller's own
// parts took — a part still running after that much longer than it should
// has lost its core, and the caller should not compete for one.
func (c *call) wait(gen uint32, own time.Duration) {
	spin := min(callerSpin, own)
	t0 := time.Now()
	for i := 1; c.pending.Load() != 0; i++ {
		spinPause()
		if i%16 != 0 {
			continue
		}
		if time.Since(t0) < spin {
			if i%256 == 0 {
				runtime.Gosched()
			}
			continue
		}
		w := uint64(gen) << 2
		c.waiting.Store(w | 1)
		if c.pending.Load() == 0 && c.waiting.CompareAndSwap(w|1, w) {
			return // finished meanwhile, and its worker will not signal
		}
		<-c.done
		return
	}
}

// checkGemm validates a gemm call's arguments, panicking as gonum does,
// and reports the transposes and whether there is anything to compute.
func checkGemm(tA, tB blas.Transpose, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) (transA, transB, ok bool) {
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
	transA, transB = tA != blas.NoTrans, tB != blas.NoTrans
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
		return transA, transB, false
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
	return transA, transB, true
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, as
// gonum's blas.Float32. When beta is zero C is not read (NaNs in C do not
// propagate). With Options.Precision BF16 it is GemmBF16.
func (im *Impl) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if im.precision == BF16 {
		im.GemmBF16(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	im.sgemm32(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// sgemm32 is the fp32 Sgemm.
func (im *Impl) sgemm32(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	transA, transB, ok := checkGemm(tA, tB, m, n, k, a, lda, b, ldb, c, ldc)
	if !ok || (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	if im.path == Generic {
		im.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	g := gemmArgs{tA: transA, tB: transB, m: m, n: n, k: k, alpha: alpha,
		a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc}
	if im.path == OpenBLAS {
		if alpha == 0 || k == 0 {
			scaleRect(&g, 0, m, 0, n) // C = beta·C, as the kernels do (A, B may be empty)
			return
		}
		openblasSgemm(&g)
		return
	}
	im.run(&g, im.pick(m, n), false)
}

// run computes the call g with kern (the bf16 kernel when bf16), split
// into parts over the pool when it is large enough.
func (im *Impl) run(g *gemmArgs, kern *microKernel, bf16 bool) {
	m, n, k := g.m, g.n, g.k
	parts := 1
	if im.threads > 1 && macs(m, n, k) >= parallelMinFlops {
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
		if bf16 {
			gemmRectBF16(ws, g, 0, m, 0, n)
		} else {
			gemmRect(kern, ws, g, 0, m, 0, n)
		}
		im.spaces.Put(ws)
		return
	}
	parts = min(parts, maxParts)
	cl := im.calls.Get().(*call)
	if cl.done == nil {
		cl.done = make(chan struct{}, 1)
	}
	cl.args, cl.kern, cl.splitM, cl.bf16 = *g, kern, splitM, bf16
	cl.gen++
	gen := cl.gen
	cl.pending.Store(int32(parts))
	cl.waiting.Store(uint64(gen) << 2)
	cl.state.Store(uint64(gen)<<32 | uint64(parts)<<16) // publishes the fields above
	// Post to parts-1 workers (never blocking: a busy worker just misses
	// this call), then work on it ourselves.
	if !im.closed.Load() {
		for i := range im.boxes[:parts-1] {
			im.boxes[i].post(cl)
		}
	}
	ws := im.spaces.Get().(*workspace)
	t0 := time.Now()
	if !cl.work(ws, gen) {
		cl.wait(gen, time.Since(t0))
	}
	im.spaces.Put(ws)
	cl.args, cl.kern = gemmArgs{}, nil
	im.calls.Put(cl)
}

// worker helps with the calls posted to box, using its own buffers ws,
// until the pool is closed. After each call it spins on the mailbox for
// workerSpin before parking.
func (im *Impl) worker(ws *workspace, box *mailbox) {
	defer im.wg.Done()
	var calm time.Time // no spinning before this: the host was oversubscribed
	for !im.closed.Load() {
		t0 := time.Now()
		last := t0
		for i := 1; t0.After(calm); i++ {
			if box.c.Load() != nil {
				cl := box.c.Swap(nil)
				if cl == nil {
					continue
				}
				// Help with whatever generation the call is at: parts can
				// only be claimed while it is live.
				gen := uint32(cl.state.Load() >> 32)
				if cl.work(ws, gen) {
					cl.finish(gen)
				}
				t0, i = time.Now(), 0
				last = t0
				continue
			}
			spinPause()
			if i%16 != 0 {
				continue
			}
			if im.closed.Load() {
				return
			}
			now := time.Now()
			if now.Sub(last) > preemptGap {
				// 16 polls take about a microsecond: the OS took
				// the core away, so others want it. Stop spinning for a
				// while rather than compete with our own caller.
				calm = now.Add(calmFor)
				break
			}
			if now.Sub(t0) >= workerSpin {
				break
			}
			last = now
			if i%256 == 0 {
				runtime.Gosched()
				last = time.Now()
			}
		}
		box.parked.Store(true)
		if box.c.Load() == nil && !im.closed.Load() {
			<-box.wake
		}
		box.parked.Store(false)
		if cl := box.c.Swap(nil); cl != nil {
			gen := uint32(cl.state.Load() >> 32)
			if cl.work(ws, gen) {
				cl.finish(gen)
			}
		}
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

// macs is m·n·k as a float64, which cannot overflow.
func macs(m, n, k int) float64 { return float64(m) * float64(n) * float64(k) }

func ceilDiv(a, b int) int { return (a + b - 1) / b }
