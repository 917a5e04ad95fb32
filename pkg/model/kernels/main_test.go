package kernels

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a model's
// worker pool (exec) and a kernels.Implementation's pool must stop when
// their owner closes them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
