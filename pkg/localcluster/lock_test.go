package localcluster

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLockRefusesASecondClusterAndNamesThePID(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockDir(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want an InUseError naming PID %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) || !strings.Contains(err.Error(), "ringctl local stop --dir "+dir) {
		t.Fatalf("message: %v", err)
	}
	if pid, held := Held(dir); !held || pid != os.Getpid() {
		t.Fatalf("Held: %d %v", pid, held)
	}
	// Clean keeps the lock; unlocking frees the directory.
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.Clean(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != LockFile {
		t.Fatalf("after Clean: %v", ents)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, held := Held(dir); held {
		t.Fatal("still held after Unlock")
	}
	l2, err := LockDir(dir)
	if err != nil {
		t.Fatalf("relock: %v", err)
	}
	l2.Unlock()
}

func TestFindIgnoresAStoppedClustersFile(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	if _, err := Find(""); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("nothing published: %v", err)
	}
	l, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := Discovery{PID: os.Getpid(), Dir: dir, Coordinators: []string{"127.0.0.1:1"}}
	if err := Publish(d); err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{"", dir} {
		got, err := Find(where)
		if err != nil || got.Coordinators[0] != "127.0.0.1:1" {
			t.Fatalf("Find(%q): %+v %v", where, got, err)
		}
	}
	l.Unlock() // the cluster died without unpublishing
	if _, err := Find(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("stale file: %v", err)
	}
	Unpublish(d)
	if _, err := os.Stat(filepath.Join(RuntimeDir(), DiscoveryFile)); !os.IsNotExist(err) {
		t.Fatalf("runtime pointer left: %v", err)
	}
}
