package localcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock a running cluster holds in its directory.
const LockFile = "ringctl.lock"

// Lock is one process's exclusive claim on a cluster directory (an flock
// on Dir/ringctl.lock holding the owner's PID). The kernel drops it when the
// process dies, however it dies, so a stale lock never blocks a new cluster.
type Lock struct {
	Dir string
	f   *os.File
}

// InUseError says a cluster directory is held by another live process.
type InUseError struct {
	Dir string
	PID int // 0 when the holder did not write its PID
}

func (e *InUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d", e.PID)
	}
	return fmt.Sprintf("cluster directory %s is in use by %s (a running `ringctl local`); stop it with `ringctl local stop --dir %s`, or pick another --dir",
		e.Dir, who, e.Dir)
}

// LockDir creates dir if needed and takes its lock, or returns an
// *InUseError naming the PID that holds it.
func LockDir(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cluster lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, PID: lockHolder(path)}
		}
		return nil, fmt.Errorf("cluster lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cluster lock %s: %w", path, err)
		}
	}
	return &Lock{Dir: dir, f: f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }

// Clean empties the locked directory, keeping only the lock.
func (l *Lock) Clean() error {
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		return fmt.Errorf("clean cluster directory: %w", err)
	}
	for _, e := range entries {
		if e.Name() == LockFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(l.Dir, e.Name())); err != nil {
			return fmt.Errorf("clean cluster directory: %w", err)
		}
	}
	return nil
}

// Held reports whether a live process holds dir's lock, and its PID.
func Held(dir string) (pid int, held bool) {
	path := filepath.Join(dir, LockFile)
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, false
	}
	return lockHolder(path), true
}

func lockHolder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
