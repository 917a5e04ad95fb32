package localcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FindBinaries returns a folder holding the coordinator and worker
// binaries: the folder of the running executable when they sit beside it
// (`make build` puts all three in bin/), else it builds them into
// buildDir with the Go toolchain from the module source tree the current
// directory is in (so `go run ./cmd/ringctl local` works from a checkout).
//
// RINGMASTER_BIN_DIR, when set, names the folder outright.
func FindBinaries(ctx context.Context, buildDir string) (string, error) {
	if dir := os.Getenv("RINGMASTER_BIN_DIR"); dir != "" {
		if isFile(filepath.Join(dir, "coordinator")) && isFile(filepath.Join(dir, "worker")) {
			return dir, nil
		}
		return "", fmt.Errorf("RINGMASTER_BIN_DIR=%s holds no coordinator and worker binaries; run `make build` and point it at bin/", dir)
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if isFile(filepath.Join(dir, "coordinator")) && isFile(filepath.Join(dir, "worker")) {
			return dir, nil
		}
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", fmt.Errorf("coordinator and worker binaries are not beside ringctl, and %w; run `make build` and use bin/ringctl", err)
	}
	return buildDir, Build(ctx, root, buildDir)
}

// Build compiles cmd/coordinator and cmd/worker of the module at root into
// dir, statically linked (CGO_ENABLED=0), so that they run on the host and
// in the empty image of container mode alike.
func Build(ctx context.Context, root, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/coordinator", "./cmd/worker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build coordinator and worker: %w\n%s", err, out)
	}
	return nil
}

// moduleRoot finds the ringmaster module the current directory is in.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("no Go toolchain to build them with: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("the current directory is not inside the ringmaster source tree")
	}
	b, err := os.ReadFile(gomod)
	if err != nil || !strings.Contains(string(b), "module github.com/ringmaster-ml/ringmaster") {
		return "", fmt.Errorf("the current directory is not inside the ringmaster source tree")
	}
	return filepath.Dir(gomod), nil
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
