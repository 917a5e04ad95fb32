package train

import (
	"runtime"
	"sync/atomic"
	"time"
)

// crew runs the parallel phases of a step with lanes (forward/backward per
// lane, then the gradient sum, clipping and zeroing in slices) on persistent
// helper goroutines, one per extra lane. A helper polls for its next task
// for a short while before it parks, and the caller polls for the helpers
// to finish before it parks: a step has several such phases, and waking a
// parked goroutine on the other core took ≈ 70 µs here each time (lane 1
// started 72 µs after lane 0, which then waited 120 µs for it).
type crew struct {
	helpers []*helper
}

// helperPoll is how long a helper (or the caller) polls before parking.
const helperPoll = 200 * time.Microsecond

// helper is one persistent goroutine. The caller writes task and then
// bumps posted; the helper runs task and then sets finished to that count.
// The atomics order the plain task field for both sides.
type helper struct {
	task     func(int) // called with part
	part     int
	posted   atomic.Uint64
	finished atomic.Uint64
	parked   atomic.Bool // the helper waits on wake
	waiting  atomic.Bool // the caller waits on done
	quit     atomic.Bool
	wake     chan struct{}
	done     chan struct{}
}

func newCrew(n int) *crew {
	c := &crew{}
	for range n {
		h := &helper{wake: make(chan struct{}, 1), done: make(chan struct{}, 1)}
		c.helpers = append(c.helpers, h)
		go h.loop()
	}
	return c
}

// run calls f(0) on the caller and f(i) for i in [1, n) on helper i−1, and
// returns when all have returned. n−1 must not exceed the crew's size.
func (c *crew) run(n int, f func(i int)) {
	for i := 1; i < n; i++ {
		c.helpers[i-1].post(f, i)
	}
	f(0)
	for i := 1; i < n; i++ {
		c.helpers[i-1].wait()
	}
}

// close stops the helpers (after their current task).
func (c *crew) close() {
	for _, h := range c.helpers {
		h.quit.Store(true)
		signal(h.wake)
	}
}

func (h *helper) post(task func(int), part int) {
	h.task, h.part = task, part
	h.posted.Add(1)
	if h.parked.Load() {
		signal(h.wake)
	}
}

func (h *helper) wait() {
	want := h.posted.Load()
	start := time.Now()
	for h.finished.Load() != want {
		if time.Since(start) < helperPoll {
			runtime.Gosched()
			continue
		}
		h.waiting.Store(true)
		if h.finished.Load() != want {
			<-h.done // a stale token only makes the loop look again
		}
		h.waiting.Store(false)
	}
}

func (h *helper) loop() {
	var seen uint64
	for {
		start := time.Now()
		for h.posted.Load() == seen && !h.quit.Load() {
			if time.Since(start) < helperPoll {
				runtime.Gosched()
				continue
			}
			h.parked.Store(true)
			if h.posted.Load() == seen && !h.quit.Load() {
				<-h.wake
			}
			h.parked.Store(false)
			start = time.Now()
		}
		if h.quit.Load() {
			return
		}
		seen = h.posted.Load()
		task := h.task
		h.task = nil // hold no reference to the trainer between tasks
		task(h.part)
		h.finished.Store(seen)
		if h.waiting.Load() {
			signal(h.done)
		}
	}
}

// signal leaves a token in a one-slot channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
