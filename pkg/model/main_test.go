package model

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind. A GPT's
// layer pool stops on Close or when the GPT is collected (startPool), so
// collect first: a pool still running after that is referenced or leaked.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		runtime.GC()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
