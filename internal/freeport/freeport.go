package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Range is where ports come from: below Linux's default ephemeral range.
const (
	Lo = 20000
	Hi = 32000
)

// Ports returns n distinct free ports claimed for this process.
func Ports(n int) ([]int, error) {
	dir := filepath.Join(os.TempDir(), "ringmaster-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	out := make([]int, 0, n)
	for try := 0; len(out) < n; try++ {
		if try > 2000 {
			return nil, fmt.Errorf("free port: no free, unclaimed port in %d-%d after %d tries", Lo, Hi, try)
		}
		p := Lo + rand.IntN(Hi-Lo)
		if !claim(dir, p) {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use by something that does not claim (keep the claim: it is busy)
		}
		_ = l.Close()
		out = append(out, p)
	}
	return out, nil
}

// Addrs is Ports as "127.0.0.1:port" strings.
func Addrs(n int) ([]string, error) {
	ps, err := Ports(n)
	if err != nil {
		return nil, err
	}
	as := make([]string, len(ps))
	for i, p := range ps {
		as[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return as, nil
}

// claim takes port p for this process unless a live process holds it.
func claim(dir string, p int) bool {
	path := filepath.Join(dir, strconv.Itoa(p))
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
			_ = f.Close()
			return true
		}
		if !errors.Is(err, os.ErrExist) {
			return false
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && (pid == os.Getpid() || alive(pid)) {
			return false // ours already, or a live process's
		}
		if err != nil && attempt == 0 {
			continue // being written right now: look once more
		}
		// stale: its process is gone; remove and try to create it again
		_ = os.Remove(path)
	}
	return false
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
