// Command peak measures this machine's fp32 FMA peak (internal/peak) and
// prints the total GFLOP/s: the denominator for MFU figures.
//
//	go run ./bench/peak [-threads 2] [-duration 2s]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/peak"
)

func main() {
	threads := flag.Int("threads", runtime.NumCPU(), "threads running the FMA loop at once")
	dur := flag.Duration("duration", 2*time.Second, "how long each thread runs")
	flag.Parse()
	flops, isa, err := peak.Measure(*threads, *dur)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%.1f GFLOP/s fp32 FMA peak, %d threads, %s\n", flops/1e9, *threads, isa)
}
