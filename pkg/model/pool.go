package model

import (
	"runtime"
	"sync/atomic"
)

// workers runs parallel loops on a fixed set of goroutines owned by a model.
// A loop hands out its items one at a time (an atomic counter), and the
// caller works on it too: a helper that the machine has not scheduled by the
// time the items run out is not waited for, so an oversubscribed host only
// slows a loop down instead of stalling it. Loops do not nest and one model
// runs one loop at a time; nothing is allocated per loop. A nil *workers
// runs every loop on the caller.
type workers struct {
	threads int
	wake    chan wakeup // helpers wait here; closed by close
	cur     loop
	closed  atomic.Bool
}

// job is the body of a parallel loop: run(i, w) does item i on participant
// w ∈ [0, threads) (for per-participant scratch space). Jobs are fields of
// long-lived structs, so passing them as interfaces does not allocate.
type job interface{ run(i, w int) }

// wakeup invites a helper to loop generation gen.
type wakeup struct {
	l   *loop
	gen uint32
}

// loop is the state of the current parallel loop. state packs the
// generation (high 32 bits), whether helpers may still join (openBit) and
// the number of helpers working on it (low bits).
type loop struct {
	job   job
	n     int32
	next  atomic.Int32
	ids   atomic.Int32
	state atomic.Uint64
	done  chan struct{} // the last helper to leave a closed loop signals here
}

const (
	openBit    = 1 << 31
	activeMask = openBit - 1
)

// newWorkers starts threads−1 helper goroutines (threads ≤ 0: GOMAXPROCS);
// with one thread it returns nil.
func newWorkers(threads int) *workers {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if threads <= 1 {
		return nil
	}
	w := &workers{threads: threads, wake: make(chan wakeup, threads-1)}
	w.cur.done = make(chan struct{}, 1)
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
	for m := range w.wake {
		l := m.l
		if !l.join(m.gen) {
			continue // a stale invitation, or the loop is already finished
		}
		l.work(int(l.ids.Add(1)))
		if s := l.state.Add(^uint64(0)); s&openBit == 0 && s&activeMask == 0 {
			l.done <- struct{}{}
		}
	}
}

// join registers a helper with generation gen while it is open.
func (l *loop) join(gen uint32) bool {
	for {
		s := l.state.Load()
		if uint32(s>>32) != gen || s&openBit == 0 {
			return false
		}
		if l.state.CompareAndSwap(s, s+1) {
			return true
		}
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
	gen := uint32(l.state.Load()>>32) + 1
	l.job, l.n = j, int32(n)
	l.next.Store(0)
	l.ids.Store(0)
	l.state.Store(uint64(gen)<<32 | openBit)
	for i := min(w.threads-1, n-1); i > 0; i-- {
		select {
		case w.wake <- wakeup{l, gen}:
		default: // the channel still holds stale invitations: fewer helpers
		}
	}
	l.work(0)
	// Close the loop to latecomers; wait only for the helpers inside.
	for {
		s := l.state.Load()
		if l.state.CompareAndSwap(s, s&^openBit) {
			if s&activeMask != 0 {
				<-l.done
			}
			break
		}
	}
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
