package coord

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (raft,
// gRPC, sessions, leader loops all have owners that must stop them).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
