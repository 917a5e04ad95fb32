// Package sysmem reads how much memory this process may still use, so that
// a job too big for the machine is refused before its buffers are
// allocated (by ringctl train and by a worker taking a generation) instead
// of being found by the kernel's OOM killer, and the most it has used
// (PeakRSS), which they report.
package sysmem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Available is the memory this process may still use: MemAvailable from
// /proc/meminfo, capped by the cgroup v2 limit minus current use. ok is
// false where neither can be read (callers then skip their check).
func Available() (avail int64, ok bool) {
	avail = -1
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, found := strings.CutPrefix(sc.Text(), "MemAvailable:"); found {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err == nil {
					avail, ok = kb<<10, true
				}
			}
		}
		f.Close()
	}
	if limit, okL := readInt("/sys/fs/cgroup/memory.max"); okL {
		used, _ := readInt("/sys/fs/cgroup/memory.current")
		if free := limit - used; !ok || free < avail {
			avail, ok = free, true
		}
	}
	return avail, ok
}

// readInt reads a file holding one decimal integer ("max" is not one).
func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

// PeakRSS is the most resident memory this process has held since it
// started (getrusage's ru_maxrss, the kernel's high-water mark: VmHWM). ok
// is false where the platform does not report it.
func PeakRSS() (bytes int64, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil || ru.Maxrss <= 0 {
		return 0, false
	}
	return ru.Maxrss << 10, true // Linux reports KiB
}
