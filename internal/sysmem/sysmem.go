// Package sysmem reads how much memory this process may still use, so that
// a job too big for the machine is refused before its buffers are
// allocated (by ringctl train and by a worker taking a generation) instead
// of being found by the kernel's OOM killer.
package sysmem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
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
