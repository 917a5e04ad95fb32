package freeport

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPortsAreDistinctClaimedAndBelowTheEphemeralRange(t *testing.T) {
	ps, err := Ports(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ps {
		if p < Lo || p >= Hi || seen[p] {
			t.Fatalf("port %d: out of [%d, %d) or handed out twice", p, Lo, Hi)
		}
		seen[p] = true
		b, err := os.ReadFile(filepath.Join(os.TempDir(), "ringmaster-ports", strconv.Itoa(p)))
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("port %d: claim %q, %v; want this PID", p, b, err)
		}
	}
	// a port claimed by this live process is never handed out again
	dir := filepath.Join(os.TempDir(), "ringmaster-ports")
	if claim(dir, ps[0]) {
		t.Fatalf("port %d claimed twice", ps[0])
	}
}

func TestStaleClaimsAreReused(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	dead := cmd.Process.Pid // exited and reaped
	dir := filepath.Join(os.TempDir(), "ringmaster-ports")
	os.MkdirAll(dir, 0o777)
	ps, _ := Ports(1)
	p := ps[0] + 1
	if p >= Hi {
		p = Lo
	}
	path := filepath.Join(dir, strconv.Itoa(p))
	os.Remove(path)
	if err := os.WriteFile(path, []byte(strconv.Itoa(dead)), 0o666); err != nil {
		t.Fatal(err)
	}
	if !claim(dir, p) {
		t.Fatalf("a claim by exited PID %d was not reused", dead)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("claim now holds %q", b)
	}
}
