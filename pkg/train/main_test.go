package train

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
)

// TestMain runs the tests with the fast GEMM installed, as the binaries run.
// (gonum's own parallel Sgemm allocates on every large call.)
func TestMain(m *testing.M) {
	impl, err := kernels.New(kernels.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	blas32.Use(impl)
	code := m.Run()
	impl.Close()
	// Sessions, heartbeats, buckets and the GEMM's pool all have owners that
	// must stop them: a goroutine still running here is a leak. A model's
	// layer pool stops on Close or when the model is collected (model.GPT),
	// so collect first; what survives that is still referenced or leaked.
	if code == 0 {
		runtime.GC()
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
