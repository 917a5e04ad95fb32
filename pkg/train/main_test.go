package train

import (
	"fmt"
	"os"
	"testing"

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
	os.Exit(code)
}
