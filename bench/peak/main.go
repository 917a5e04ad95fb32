// Command peak measures this machine's fp32 FMA peak: every thread runs
// independent chains of the widest fused multiply-add the CPU has (12
// registers, no memory traffic) for the given duration, and the program
// prints the total GFLOP/s. It is the denominator for MFU figures: the
// figure a datasheet gives assumes a clock the machine may not sustain.
//
//	go run ./bench/peak [-threads 2] [-duration 2s]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

func main() {
	threads := flag.Int("threads", runtime.NumCPU(), "threads running the FMA loop at once")
	dur := flag.Duration("duration", 2*time.Second, "how long each thread runs")
	flag.Parse()
	loop, flopsPerIter, isa := fmaLoop()
	if loop == nil {
		fmt.Fprintln(os.Stderr, "peak: no AVX2/FMA or AVX-512 on this CPU")
		os.Exit(1)
	}
	runtime.GOMAXPROCS(max(*threads, runtime.GOMAXPROCS(0)))
	const chunk = 1 << 20 // iterations between clock reads
	loop(chunk)           // warm up (clocks, frequency licence)
	var mu sync.Mutex
	var total float64
	var wg sync.WaitGroup
	for range *threads {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start := time.Now()
			iters := 0
			for time.Since(start) < *dur {
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
	fmt.Printf("%.1f GFLOP/s fp32 FMA peak, %d threads, %s\n", total/1e9, *threads, isa)
}
