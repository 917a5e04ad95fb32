package sysmem

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// On Linux the figure is read and lies within the machine's total memory.
func TestAvailableIsWithinTheMachine(t *testing.T) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip("no /proc/meminfo")
	}
	var totalKB int64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			fmt.Sscanf(line, "MemTotal: %d kB", &totalKB)
		}
	}
	avail, ok := Available()
	if !ok {
		t.Fatal("Available: not readable although /proc/meminfo exists")
	}
	if avail <= 0 || avail > totalKB<<10 {
		t.Errorf("Available() = %d bytes, MemTotal %d bytes", avail, totalKB<<10)
	}
}

// The peak grows past memory this test touches and stays within the
// machine.
func TestPeakRSSSeesWhatThisProcessTouched(t *testing.T) {
	before, ok := PeakRSS()
	if !ok {
		t.Skip("no ru_maxrss on this platform")
	}
	const n = 256 << 20
	buf := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		buf[i] = 1 // make every page resident
	}
	after, _ := PeakRSS()
	if after < n || after < before {
		t.Fatalf("peak RSS %d bytes after touching %d (before: %d)", after, n, before)
	}
	b, _ := os.ReadFile("/proc/meminfo")
	var totalKB int64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			fmt.Sscanf(line, "MemTotal: %d kB", &totalKB)
		}
	}
	if totalKB > 0 && after > totalKB<<10 {
		t.Fatalf("peak RSS %d bytes above the machine's %d", after, totalKB<<10)
	}
	_ = buf[n-1]
}
