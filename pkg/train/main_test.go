package train

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	code := m.Run()
	// Sessions, heartbeats, buckets and the GEMM's pool all have owners that
	// must stop them: a goroutine still running here is a leak. A trainer's
	// own GEMM and lanes and a model's layer pool stop on Close or when
	// their owner is collected, so collect first; what survives that is
	// still referenced or leaked.
	if code == 0 {
		runtime.GC()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
