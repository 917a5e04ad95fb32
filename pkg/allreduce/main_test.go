package allreduce

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(rankHelper())
	}
	if name := os.Getenv(dialUnixEnv); name != "" {
		os.Exit(dialUnixHelper(name))
	}
	goleak.VerifyTestMain(m)
}
