package coord

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// checkedStore is raft's log and stable store (bbolt, raft.db) with two
// defences against a damaged file, so that a node never serves state it
// could not verify:
//
//   - every log entry carries a CRC32C of its index, term, type, data and
//     extensions (appended to Extensions with a magic tag, so a follower
//     that receives the entry computes its own), verified on every read;
//     every entry of the log is verified once when the node opens;
//   - bbolt panics on some damaged pages (a flipped page header); each call
//     recovers that panic into an error naming the file.
//
// Entries written before checksums existed are accepted unverified: the
// index from which every entry must carry one is kept in the stable store.
type checkedStore struct {
	*raftboltdb.BoltStore
	path       string
	checkedMin uint64 // entries at or past this index must carry a checksum
}

var (
	crcTable        = crc32.MakeTable(crc32.Castagnoli)
	crcMagic        = [4]byte{'r', 'm', 'c', '1'}
	keyChecksumFrom = []byte("ringmaster_log_crc_from")
	// ErrCorruptLog is a raft log entry whose checksum does not match, or a
	// raft.db bbolt cannot read.
	ErrCorruptLog = errors.New("raft log corrupt")
)

// wipeHint tells an operator how to recover a node whose raft.db is damaged.
const wipeHint = "the node's own copy is damaged; move its data directory away and start it again empty so it rejoins as a new member and catches up from the others"

// openLogStore opens raft.db at path and verifies every entry in it.
func openLogStore(path string) (s *checkedStore, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("open %s: %w: bbolt: %v; %s", path, ErrCorruptLog, r, wipeHint)
		}
	}()
	bs, err := raftboltdb.NewBoltStore(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s = &checkedStore{BoltStore: bs, path: path}
	if err := s.init(); err != nil {
		_ = bs.Close()
		return nil, err
	}
	return s, nil
}

// init reads (or, on a log without one, sets) the index from which entries
// carry checksums, then verifies every entry.
func (s *checkedStore) init() error {
	from, err := s.BoltStore.GetUint64(keyChecksumFrom)
	if err != nil { // not set: a new log, or one written before checksums
		last, err := s.BoltStore.LastIndex()
		if err != nil {
			return fmt.Errorf("open %s: %w", s.path, err)
		}
		from = last + 1
		if err := s.BoltStore.SetUint64(keyChecksumFrom, from); err != nil {
			return fmt.Errorf("open %s: %w", s.path, err)
		}
	}
	s.checkedMin = from
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	var l raft.Log
	for i := max(first, 1); i <= last && first > 0; i++ {
		if err := s.GetLog(i, &l); err != nil {
			return err
		}
	}
	return nil
}

// guard turns a bbolt panic during op into an error naming the file.
func (s *checkedStore) guard(op string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s %s: %w: bbolt: %v; %s", op, s.path, ErrCorruptLog, r, wipeHint)
		}
	}()
	return f()
}

func entrySum(l *raft.Log, ext []byte) uint32 {
	var hdr [17]byte
	binary.LittleEndian.PutUint64(hdr[0:], l.Index)
	binary.LittleEndian.PutUint64(hdr[8:], l.Term)
	hdr[16] = byte(l.Type)
	c := crc32.Update(0, crcTable, hdr[:])
	c = crc32.Update(c, crcTable, l.Data)
	return crc32.Update(c, crcTable, ext)
}

// GetLog reads entry idx and verifies its checksum.
func (s *checkedStore) GetLog(idx uint64, l *raft.Log) error {
	if err := s.guard("read log from", func() error { return s.BoltStore.GetLog(idx, l) }); err != nil {
		return err
	}
	ext := l.Extensions
	n := len(ext)
	if n < 8 || [4]byte(ext[n-4:]) != crcMagic {
		if idx >= s.checkedMin {
			return fmt.Errorf("%s: log entry %d: %w: no checksum where one must be; %s", s.path, idx, ErrCorruptLog, wipeHint)
		}
		return nil // written before checksums
	}
	want := binary.LittleEndian.Uint32(ext[n-8:])
	l.Extensions = ext[:n-8]
	if len(l.Extensions) == 0 {
		l.Extensions = nil
	}
	if got := entrySum(l, l.Extensions); got != want || l.Index != idx {
		return fmt.Errorf("%s: log entry %d (index %d, term %d): %w: checksum %08x, stored %08x; %s",
			s.path, idx, l.Index, l.Term, ErrCorruptLog, got, want, wipeHint)
	}
	return nil
}

// StoreLog stores one entry with its checksum.
func (s *checkedStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries with their checksums. The caller's entries are
// not changed (raft keeps and replicates them).
func (s *checkedStore) StoreLogs(logs []*raft.Log) error {
	sealed := make([]*raft.Log, len(logs))
	for i, l := range logs {
		c := *l
		ext := make([]byte, 0, len(l.Extensions)+8)
		ext = append(ext, l.Extensions...)
		ext = binary.LittleEndian.AppendUint32(ext, entrySum(l, l.Extensions))
		c.Extensions = append(ext, crcMagic[:]...)
		sealed[i] = &c
	}
	return s.guard("write log to", func() error { return s.BoltStore.StoreLogs(sealed) })
}

// FirstIndex, LastIndex, DeleteRange and the stable store's calls recover
// bbolt panics too.
func (s *checkedStore) FirstIndex() (i uint64, err error) {
	err = s.guard("read", func() (e error) { i, e = s.BoltStore.FirstIndex(); return })
	return
}

func (s *checkedStore) LastIndex() (i uint64, err error) {
	err = s.guard("read", func() (e error) { i, e = s.BoltStore.LastIndex(); return })
	return
}

func (s *checkedStore) DeleteRange(lo, hi uint64) error {
	return s.guard("delete logs in", func() error { return s.BoltStore.DeleteRange(lo, hi) })
}

func (s *checkedStore) Get(k []byte) (v []byte, err error) {
	err = s.guard("read", func() (e error) { v, e = s.BoltStore.Get(k); return })
	return
}

func (s *checkedStore) GetUint64(k []byte) (v uint64, err error) {
	err = s.guard("read", func() (e error) { v, e = s.BoltStore.GetUint64(k); return })
	return
}
