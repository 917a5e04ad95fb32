//go:build openblas && cgo

package kernels

import (
	"fmt"
	"strings"

	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels/internal/cblas"
)

// openblasBuilt reports whether this build has the OpenBLAS backend
// (build tag openblas, cgo, libopenblas and cblas.h: Debian's
// libopenblas-dev).
const openblasBuilt = true

// openblasInit sets OpenBLAS's thread count (process-wide) and checks the
// kernel it picked: an OpenBLAS that does not know this CPU falls back to a
// pre-AVX2 core silently, several times slower (Debian's 0.3.21 did on an
// AVX-512 Xeon: Prescott, SSE3). The kernel is chosen when the library
// loads, from OPENBLAS_CORETYPE, so the fix is in the environment.
func openblasInit(threads int) error {
	cblas.SetThreads(threads)
	core := openblasCore()
	if slowCore(core) && (hasAVX2() || hasAVX512()) {
		want := "Haswell"
		if hasAVX512() {
			want = "SkylakeX (or Cooperlake)"
		}
		return fmt.Errorf("kernels: OpenBLAS runs its %s kernel on a CPU with AVX2/AVX-512, several times slower; set OPENBLAS_CORETYPE=%s in the environment before starting the program", core, want)
	}
	return nil
}

// openblasCore is the name of the kernel OpenBLAS runs ("Cooperlake", …).
func openblasCore() string { return cblas.CoreName() }

// slowCore reports whether an OpenBLAS core name is one without AVX2 FMA
// kernels.
func slowCore(name string) bool {
	switch strings.ToLower(name) {
	case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine",
		"northwood", "banias", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat", "sandybridge", "unknown":
		return true
	}
	return false
}

// openblasSgemm runs g on cblas_sgemm; the caller has checked it (k ≥ 1,
// alpha ≠ 0, m, n ≥ 1).
func openblasSgemm(g *gemmArgs) {
	cblas.Sgemm(g.tA, g.tB, g.m, g.n, g.k, g.alpha, g.a, g.lda, g.b, g.ldb, g.beta, g.c, g.ldc)
}
