package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// DiscoveryFile is the name of the file a running cluster writes in its
// directory (and, as a pointer to the latest one, in the user's runtime
// directory) so that client commands find its coordinators.
const DiscoveryFile = "cluster.json"

// Discovery is what a running local cluster publishes about itself.
type Discovery struct {
	PID          int      `json:"pid"`          // the `ringctl local` process (holds the lock)
	Dir          string   `json:"dir"`          // absolute cluster directory
	Coordinators []string `json:"coordinators"` // gRPC addresses
	Dashboards   []string `json:"dashboards"`   // the coordinators' HTTP addresses (/, /api/v1/)
	// TLSDir holds the cluster CA and the operator certificate
	// (OperatorCert) client commands present; "" for an insecure cluster.
	TLSDir    string `json:"tls_dir,omitempty"`
	Workers   []int  `json:"worker_pids"`
	CoordPIDs []int  `json:"coordinator_pids"`
	Keep      bool   `json:"keep"` // stays up after its job (`ringctl local -keep`)
	// Idle is set (and the file rewritten) when a -keep cluster's job has
	// ended and it only serves client commands until it is stopped.
	Idle    bool      `json:"idle"`
	Started time.Time `json:"started"`
}

// RuntimeDir is where the pointer to the latest local cluster lives:
// $XDG_RUNTIME_DIR/ringmaster, or a per-user folder in the temp dir.
func RuntimeDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "ringmaster")
	}
	return filepath.Join(os.TempDir(), "ringmaster-"+strconv.Itoa(os.Getuid()))
}

// Publish writes d to its directory and to the runtime directory.
func Publish(d Discovery) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(d.Dir, DiscoveryFile), b); err != nil {
		return fmt.Errorf("publish cluster: %w", err)
	}
	if err := os.MkdirAll(RuntimeDir(), 0o700); err != nil {
		return fmt.Errorf("publish cluster: %w", err)
	}
	if err := writeAtomic(filepath.Join(RuntimeDir(), DiscoveryFile), b); err != nil {
		return fmt.Errorf("publish cluster: %w", err)
	}
	return nil
}

// Unpublish removes d's files (the runtime pointer only when it still
// points at d).
func Unpublish(d Discovery) {
	_ = os.Remove(filepath.Join(d.Dir, DiscoveryFile))
	rt := filepath.Join(RuntimeDir(), DiscoveryFile)
	if cur, err := readDiscovery(rt); err == nil && cur.Dir == d.Dir && cur.PID == d.PID {
		_ = os.Remove(rt)
	}
}

// ErrNotRunning says no live local cluster was found.
var ErrNotRunning = errors.New("no local cluster is running")

// Find returns the live cluster in dir, or with dir "" the latest one the
// runtime directory points at. A file left by a dead cluster (its lock is
// free) counts as none.
func Find(dir string) (Discovery, error) {
	path := filepath.Join(RuntimeDir(), DiscoveryFile)
	if dir != "" {
		path = filepath.Join(dir, DiscoveryFile)
	}
	d, err := readDiscovery(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Discovery{}, fmt.Errorf("%w (no %s)", ErrNotRunning, path)
	}
	if err != nil {
		return Discovery{}, err
	}
	if _, held := Held(d.Dir); !held {
		return Discovery{}, fmt.Errorf("%w (%s is left from a cluster that has stopped)", ErrNotRunning, path)
	}
	return d, nil
}

func readDiscovery(path string) (Discovery, error) {
	var d Discovery
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("read %s: %w", path, err)
	}
	return d, nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
