package train

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// The crew runs part i of every phase exactly once, the caller's part on the
// caller, and returns only when all parts are done; close stops the helpers.
func TestCrewRunsEveryPartAndStops(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newCrew(3)
	var counts [4]atomic.Int64
	for phase := range 2000 {
		n := 1 + phase%4
		var finished atomic.Int64
		c.run(n, func(i int) {
			if phase%97 == 0 {
				time.Sleep(time.Duration(i) * helperPoll) // some helpers outlast the caller's polling
			}
			counts[i].Add(1)
			finished.Add(1)
		})
		if got := finished.Load(); got != int64(n) {
			t.Fatalf("phase %d: run returned after %d of %d parts", phase, got, n)
		}
		if phase%500 == 0 {
			time.Sleep(3 * helperPoll) // let the helpers park, then wake them again
		}
	}
	for i := range counts {
		if want := int64(2000 - 500*i); counts[i].Load() != want {
			t.Errorf("part %d ran %d times, want %d", i, counts[i].Load(), want)
		}
	}
	c.close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after close, %d before", n, before)
	}
}
