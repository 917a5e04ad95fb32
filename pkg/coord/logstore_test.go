package coord

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// writeLog stores n entries whose data is a recognisable payload.
func writeLog(t *testing.T, path string, n int) {
	t.Helper()
	s, err := openLogStore(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*raft.Log
	for i := 1; i <= n; i++ {
		logs = append(logs, &raft.Log{Index: uint64(i), Term: 1, Type: raft.LogCommand,
			Data: []byte(fmt.Sprintf("payload-%04d-state-running", i))})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	if logs[0].Extensions != nil {
		t.Error("StoreLogs changed the caller's entry")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, at int, n int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := at; i < at+n && i < len(b); i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Entries read back intact; a flipped byte inside an entry's data (a
// leaf page, which bbolt itself never checks: the node used to start and
// serve a different job state) makes the open fail, naming the file and
// the entry.
func TestLogStoreRefusesAFlippedEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	writeLog(t, path, 50)
	s, err := openLogStore(path)
	if err != nil {
		t.Fatalf("intact log: %v", err)
	}
	var l raft.Log
	if err := s.GetLog(7, &l); err != nil || string(l.Data) != "payload-0007-state-running" || l.Extensions != nil {
		t.Fatalf("entry 7: %q ext %v err %v", l.Data, l.Extensions, err)
	}
	s.Close()

	b, _ := os.ReadFile(path)
	at := bytes.Index(b, []byte("payload-0023-state-running"))
	if at < 0 {
		t.Fatal("payload of entry 23 not found in the file")
	}
	flip(t, path, at+19, 1) // "running" → something else, same length
	_, err = openLogStore(path)
	if !errors.Is(err, ErrCorruptLog) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "log entry 23") {
		t.Fatalf("open with a flipped entry: %v, want ErrCorruptLog naming %s and entry 23", err, path)
	}
	if !strings.Contains(err.Error(), "rejoins as a new member") {
		t.Errorf("error %q does not say how to recover", err)
	}
}

// Damaged page headers make bbolt panic; the open returns an error naming
// the file instead of crashing the coordinator.
func TestLogStoreTurnsBboltPanicsIntoErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	writeLog(t, path, 200)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	// Flip the first 16 bytes (id, flags, count) of every page after the two
	// meta pages and the freelist.
	for off := 3 * page; off < int(info.Size()); off += page {
		flip(t, path, off, 16)
	}
	s, err := openLogStore(path)
	if err == nil {
		s.Close()
		t.Fatal("open succeeded on a file whose page headers are all damaged")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	t.Logf("error: %v", err)
}

// A raft.db written before checksums (plain raft-boltdb) still opens; its
// old entries read unverified and new ones are checksummed.
func TestLogStoreAcceptsALogFromBeforeChecksums(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	old, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.StoreLog(&raft.Log{Index: 1, Term: 1, Data: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s, err := openLogStore(path)
	if err != nil {
		t.Fatalf("open a log from before checksums: %v", err)
	}
	defer s.Close()
	if err := s.StoreLog(&raft.Log{Index: 2, Term: 1, Data: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	for i, want := range []string{"old", "new"} {
		if err := s.GetLog(uint64(i+1), &l); err != nil || string(l.Data) != want {
			t.Errorf("entry %d: %q, %v", i+1, l.Data, err)
		}
	}
}
