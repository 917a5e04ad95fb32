//go:build unix

package kernels

import "syscall"

// processCPU returns this process's user+system CPU seconds, or 0 if unknown.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
