// Package peak measures this machine's fp32 FMA peak: every thread runs
// independent chains of the widest fused multiply-add the CPU has (12
// registers, no memory traffic). It is the MFU denominator when an
// operator gives none (cmd/worker --peak-gflops) and what bench/peak
// prints: a datasheet figure assumes a clock the machine may not sustain.
package peak

import (
	"errors"
	"runtime"
	"sync"
	"time"
)

// ErrNoFMA: the CPU has neither AVX-512 nor AVX2/FMA (or is not amd64).
var ErrNoFMA = errors.New("peak: no AVX2/FMA or AVX-512 on this CPU")

// Measure runs the FMA loop on threads locked OS threads at once for d and
// returns their summed FLOP/s and the instruction set used.
func Measure(threads int, d time.Duration) (flops float64, isa string, err error) {
	loop, flopsPerIter, isa := fmaLoop()
	if loop == nil {
		return 0, "", ErrNoFMA
	}
	threads = max(threads, 1)
	if runtime.GOMAXPROCS(0) < threads {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
	}
	const chunk = 1 << 16 // iterations between clock reads
	loop(chunk)           // warm up (clocks, frequency licence)
	var mu sync.Mutex
	var total float64
	var wg sync.WaitGroup
	for range threads {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := time.Now()
			iters := 0
			for time.Since(start) < d {
				loop(chunk)
				iters += chunk
			}
			rate := float64(iters) * flopsPerIter / time.Since(start).Seconds()
			mu.Lock()
			total += rate
			mu.Unlock()
		})
	}
	wg.Wait()
	return total, isa, nil
}
