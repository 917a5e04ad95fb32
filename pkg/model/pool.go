package model

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// workers runs parallel loops on a fixed set of goroutines owned by a model.
// A loop hands out its items one at a time (an atomic counter), so a core
// that the machine takes away for a while only delays the items it holds.
// Loops do not nest and one model runs one loop at a time; nothing is
// allocated per loop. A nil *workers runs every loop on the caller.
type workers struct {
	threads int
	wake    chan *loop // helpers wait here; closed by close
	cur     loop
	closed  atomic.Bool
}

// job is the body of a parallel loop: run(i, w) does item i on participant
// w ∈ [0, threads) (for per-participant scratch space). Jobs are fields of
// long-lived structs, so passing them as interfaces does not allocate.
type job interface{ run(i, w int) }

type loop struct {
	job  job
	n    int32
	next atomic.Int32
	ids  atomic.Int32
	wg   sync.WaitGroup
}

// newWorkers starts threads−1 helper goroutines (threads ≤ 0: GOMAXPROCS);
// with one thread it returns nil.
func newWorkers(threads int) *workers {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if threads <= 1 {
		return nil
	}
	w := &workers{threads: threads, wake: make(chan *loop, threads-1)}
	for i := 0; i < threads-1; i++ {
		go w.helper()
	}
	return w
}

// size is the number of participants of a loop (1 for nil).
func (w *workers) size() int {
	if w == nil {
		return 1
	}
	return w.threads
}

func (w *workers) helper() {
	for l := range w.wake {
		l.work(int(l.ids.Add(1)))
		l.wg.Done()
	}
}

func (l *loop) work(id int) {
	for {
		i := l.next.Add(1) - 1
		if i >= l.n {
			return
		}
		l.job.run(int(i), id)
	}
}

// For runs j.run(i, ·) for every i in [0,n) and returns when all are done.
func (w *workers) For(n int, j job) {
	if w == nil || n <= 1 || w.closed.Load() {
		for i := 0; i < n; i++ {
			j.run(i, 0)
		}
		return
	}
	l := &w.cur
	l.job, l.n = j, int32(n)
	l.next.Store(0)
	l.ids.Store(0)
	k := min(w.threads-1, n-1)
	l.wg.Add(k)
	for i := 0; i < k; i++ {
		w.wake <- l
	}
	l.work(0)
	l.wg.Wait()
	l.job = nil
}

// close stops the helpers; it is idempotent. Loops after close run on the caller.
func (w *workers) close() {
	if w == nil {
		return
	}
	if w.closed.CompareAndSwap(false, true) {
		close(w.wake)
	}
}
