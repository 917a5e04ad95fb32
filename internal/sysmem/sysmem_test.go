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
