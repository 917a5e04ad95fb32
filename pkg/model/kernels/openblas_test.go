//go:build openblas && cgo

package kernels

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// An OpenBLAS that fell back to a pre-AVX2 kernel is refused with the fix
// in the message. OPENBLAS_CORETYPE is read when the library loads, so the
// check runs in a child process with it set.
func TestOpenBLASSlowCoreIsRefused(t *testing.T) {
	if os.Getenv("KERNELS_OPENBLAS_CHILD") == "1" {
		_, err := New(Options{Path: OpenBLAS})
		if err == nil {
			os.Stdout.WriteString("core " + openblasCore() + ": no error\n")
			os.Exit(3)
		}
		os.Stdout.WriteString(err.Error() + "\n")
		os.Exit(0)
	}
	if !hasAVX2() {
		t.Skip("the check is for CPUs with AVX2 or AVX-512")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOpenBLASSlowCoreIsRefused$")
	cmd.Env = append(os.Environ(), "KERNELS_OPENBLAS_CHILD=1", "OPENBLAS_CORETYPE=Prescott")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Prescott") || !strings.Contains(string(out), "set OPENBLAS_CORETYPE=") {
		t.Fatalf("New with OpenBLAS on its Prescott kernel: %q, want an error naming the kernel and OPENBLAS_CORETYPE", out)
	}
}

func TestOpenBLASCore(t *testing.T) {
	im := newImpl(t, OpenBLAS, 2)
	if core := openblasCore(); core == "" || slowCore(core) {
		t.Errorf("OpenBLAS runs core %q", core)
	}
	if im.Threads() != 2 {
		t.Errorf("Threads() = %d", im.Threads())
	}
	for name, slow := range map[string]bool{"Prescott": true, "SANDYBRIDGE": true, "SkylakeX": false, "Cooperlake": false, "Haswell": false, "Zen": false} {
		if slowCore(name) != slow {
			t.Errorf("slowCore(%q) = %v", name, !slow)
		}
	}
	if _, err := New(Options{Path: OpenBLAS}); errors.Is(err, ErrUnsupported) {
		t.Errorf("New(OpenBLAS) in an openblas build: %v", err)
	}
}
