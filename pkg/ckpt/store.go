package ckpt

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrNotFound: the store holds no such checkpoint.
	ErrNotFound = errors.New("checkpoint not found")
	// ErrCorrupt: stored bytes fail a checksum or cannot be decoded.
	ErrCorrupt = errors.New("checkpoint corrupt")
	// ErrUnsupportedVersion: the shard was written in a format version this
	// build does not read.
	ErrUnsupportedVersion = errors.New("unsupported checkpoint format version")
)

// DefaultChunkBytes is the default size of one stored chunk of a float32 stream.
const DefaultChunkBytes = 4 << 20

// Options configures Open. The zero value is the default.
type Options struct {
	// ChunkBytes is the payload size of one stored chunk (rounded down to a
	// multiple of 4; default DefaultChunkBytes). It affects writes only:
	// every shard records its own chunk size.
	ChunkBytes int
	// LockTimeout bounds how long Open waits for another process holding
	// the file's lock (default 10 s).
	LockTimeout time.Duration
	// Now stamps Created on Put (default time.Now).
	Now func() time.Time
}

// Store is a worker's checkpoint file. Its methods are safe for concurrent
// use: bbolt runs one writer at a time and readers alongside it, each seeing
// a consistent snapshot.
type Store struct {
	db         *bbolt.DB
	path       string
	chunkElems int
	now        func() time.Time
}

// Open opens the checkpoint file at path, creating it if absent. Commits are
// fsynced. A file that is not a bbolt database, or is truncated, fails with
// an error wrapping ErrCorrupt.
func Open(path string, opts Options) (*Store, error) {
	if opts.ChunkBytes == 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.ChunkBytes < 4 {
		return nil, fmt.Errorf("ckpt: open %s: chunk size %d bytes is below one float32", path, opts.ChunkBytes)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var db *bbolt.DB
	err := guard(func() error {
		var err error
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
		return err
	})
	if err != nil {
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("ckpt: open %s: %w", path, err)
	}
	st := &Store{db: db, path: path, chunkElems: opts.ChunkBytes / 4, now: opts.Now}
	if err := st.checkSize(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ckpt: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketJobs)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ckpt: open %s: %w", path, err)
	}
	return st, nil
}

// checkSize rejects a file shorter than the database its meta page
// describes (a truncated copy), whose pages would lie past the end of the
// mapping.
func (st *Store) checkSize() error {
	fi, err := os.Stat(st.path)
	if err != nil {
		return err
	}
	return st.view(func(tx *bbolt.Tx) error {
		if tx.Size() > fi.Size() {
			return fmt.Errorf("%w: file is %d bytes, its database %d: truncated", ErrCorrupt, fi.Size(), tx.Size())
		}
		return nil
	})
}

// Close closes the file. In-flight calls finish first.
func (st *Store) Close() error {
	if err := st.db.Close(); err != nil {
		return fmt.Errorf("ckpt: close %s: %w", st.path, err)
	}
	return nil
}

// Path is the file the store lives in.
func (st *Store) Path() string { return st.path }

// Put stores s, replacing any shard with the same job, step and tp rank, in
// one fsynced transaction. s is not modified; the stored Created is the
// store's clock at the time of the call.
func (st *Store) Put(s *Shard) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("ckpt: put job %q step %d tp %d: %w", s.Job, s.Step, s.TP, err)
	}
	h := &header{
		Version: FormatVersion, Job: s.Job, Step: s.Step, Generation: s.Generation, TP: s.TP, TPSize: s.TPSize,
		ModelHash: s.ModelHash, Spec: s.Spec, Iter: s.Iter, Meta: s.Meta, Created: st.now().UTC(),
		Manifest: s.Manifest, OptimLo: s.Optim.Lo, OptimHi: s.Optim.Hi, OptimSteps: s.Optim.Steps,
		ChunkElems: st.chunkElems,
	}
	// Encode and checksum outside the transaction: the writer lock is held
	// only for the copy into the file.
	type kv struct{ k, v []byte }
	var chunks []kv
	sum := sha256.New()
	for i, x := range [...][]float32{s.Data, s.Optim.M, s.Optim.V} {
		sec := section{Name: sections[i], Len: len(x)}
		for c := range numChunks(len(x), st.chunkElems) {
			b := encodeFloats(x[c*st.chunkElems : min((c+1)*st.chunkElems, len(x))])
			sec.CRC32 = append(sec.CRC32, crc32.Checksum(b, castagnoli))
			sum.Write(b)
			chunks = append(chunks, kv{chunkKey(sec.Name, c), b})
		}
		h.Sections = append(h.Sections, sec)
	}
	h.SHA256 = sum.Sum(nil)
	hb, err := encodeHeader(h)
	if err != nil {
		return fmt.Errorf("ckpt: put job %q step %d tp %d: %w", s.Job, s.Step, s.TP, err)
	}
	err = st.db.Update(func(tx *bbolt.Tx) error {
		jb, err := tx.Bucket(bucketJobs).CreateBucketIfNotExists([]byte(s.Job))
		if err != nil {
			return err
		}
		key := ckptKey(s.Step, s.TP)
		if jb.Bucket(key) != nil {
			if err := jb.DeleteBucket(key); err != nil {
				return fmt.Errorf("replace: %w", err)
			}
		}
		cb, err := jb.CreateBucket(key)
		if err != nil {
			return err
		}
		cb.FillPercent = 1 // keys arrive in order
		if err := cb.Put(keyHeader, hb); err != nil {
			return err
		}
		for _, c := range chunks {
			if err := cb.Put(c.k, c.v); err != nil {
				return fmt.Errorf("chunk %s: %w", c.k, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ckpt: put job %q step %d tp %d: %w", s.Job, s.Step, s.TP, err)
	}
	return nil
}

// Get reads the shard of tp rank tp at step of job, verifying every
// checksum. It fails with ErrNotFound when absent and ErrCorrupt (naming the
// chunk) when a check fails.
func (st *Store) Get(job string, step, tp int) (*Shard, error) {
	var s *Shard
	err := st.view(func(tx *bbolt.Tx) error {
		cb, h, err := openCkpt(tx, job, step, tp)
		if err != nil {
			return err
		}
		bufs := [3][]float32{}
		for i, sec := range h.Sections {
			bufs[i] = make([]float32, sec.Len)
		}
		if err := readChunks(cb, h, func(i, lo int, b []byte) { decodeFloats(bufs[i][lo:lo+len(b)/4], b) }); err != nil {
			return err
		}
		s = &Shard{
			Job: h.Job, Step: h.Step, Generation: h.Generation, TP: h.TP, TPSize: h.TPSize,
			ModelHash: h.ModelHash, Spec: h.Spec, Manifest: h.Manifest, Data: bufs[0],
			Optim: Optim{Lo: h.OptimLo, Hi: h.OptimHi, M: bufs[1], V: bufs[2], Steps: h.OptimSteps},
			Iter:  h.Iter, Meta: h.Meta, Created: h.Created,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ckpt: get job %q step %d tp %d: %w", job, step, tp, err)
	}
	return s, nil
}

// Verify re-reads a stored shard and checks every checksum without
// decoding it.
func (st *Store) Verify(job string, step, tp int) error {
	err := st.view(func(tx *bbolt.Tx) error {
		cb, h, err := openCkpt(tx, job, step, tp)
		if err != nil {
			return err
		}
		return readChunks(cb, h, nil)
	})
	if err != nil {
		return fmt.Errorf("ckpt: verify job %q step %d tp %d: %w", job, step, tp, err)
	}
	return nil
}

// Stat describes one stored shard from its header alone (Verify checks
// its data).
func (st *Store) Stat(job string, step, tp int) (Info, error) {
	var info Info
	err := st.view(func(tx *bbolt.Tx) error {
		_, h, err := openCkpt(tx, job, step, tp)
		if err == nil {
			info = h.info()
		}
		return err
	})
	if err != nil {
		return Info{}, fmt.Errorf("ckpt: stat job %q step %d tp %d: %w", job, step, tp, err)
	}
	return info, nil
}

// List describes every shard of job, by step then tp rank; empty when the
// store holds none.
func (st *Store) List(job string) ([]Info, error) {
	var infos []Info
	err := st.view(func(tx *bbolt.Tx) error {
		jb := tx.Bucket(bucketJobs).Bucket([]byte(job))
		if jb == nil {
			return nil
		}
		return jb.ForEachBucket(func(k []byte) error {
			step, tp, ok := parseKey(k)
			if !ok {
				return fmt.Errorf("%w: unexpected key %x", ErrCorrupt, k)
			}
			h, err := readHeader(jb.Bucket(k), job, step, tp)
			if err != nil {
				return fmt.Errorf("step %d tp %d: %w", step, tp, err)
			}
			infos = append(infos, h.info())
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ckpt: list job %q: %w", job, err)
	}
	return infos, nil
}

// Latest describes the newest shard of tp rank tp of job; ErrNotFound when
// there is none.
func (st *Store) Latest(job string, tp int) (Info, error) {
	var info Info
	err := st.view(func(tx *bbolt.Tx) error {
		jb := tx.Bucket(bucketJobs).Bucket([]byte(job))
		if jb == nil {
			return ErrNotFound
		}
		c := jb.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			step, r, ok := parseKey(k)
			if !ok || r != tp {
				continue
			}
			h, err := readHeader(jb.Bucket(k), job, step, tp)
			if err != nil {
				return fmt.Errorf("step %d: %w", step, err)
			}
			info = h.info()
			return nil
		}
		return ErrNotFound
	})
	if err != nil {
		return Info{}, fmt.Errorf("ckpt: latest of job %q tp %d: %w", job, tp, err)
	}
	return info, nil
}

// Jobs lists the jobs the store holds shards of, sorted.
func (st *Store) Jobs() ([]string, error) {
	var jobs []string
	err := st.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEachBucket(func(k []byte) error {
			jobs = append(jobs, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ckpt: list jobs: %w", err)
	}
	return jobs, nil
}

// Delete removes every tp shard of job at step. Deleting what is absent is
// not an error.
func (st *Store) Delete(job string, step int) error {
	err := st.db.Update(func(tx *bbolt.Tx) error {
		jb := tx.Bucket(bucketJobs).Bucket([]byte(job))
		if jb == nil {
			return nil
		}
		return deleteSteps(jb, func(s int) bool { return s == step })
	})
	if err != nil {
		return fmt.Errorf("ckpt: delete job %q step %d: %w", job, step, err)
	}
	return nil
}

// DeleteJob removes every shard of job.
func (st *Store) DeleteJob(job string) error {
	err := st.db.Update(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketJobs).DeleteBucket([]byte(job))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("ckpt: delete job %q: %w", job, err)
	}
	return nil
}

// Retain deletes every step of job except the newest keep steps and the
// protected ones (for example the last committed checkpoint), in one
// transaction, and returns the deleted steps in increasing order.
func (st *Store) Retain(job string, keep int, protect ...int) ([]int, error) {
	if keep < 0 {
		return nil, fmt.Errorf("ckpt: retain job %q: keep %d is negative", job, keep)
	}
	var deleted []int
	err := st.db.Update(func(tx *bbolt.Tx) error {
		jb := tx.Bucket(bucketJobs).Bucket([]byte(job))
		if jb == nil {
			return nil
		}
		var steps []int // distinct, increasing
		if err := jb.ForEachBucket(func(k []byte) error {
			if s, _, ok := parseKey(k); ok && (len(steps) == 0 || steps[len(steps)-1] != s) {
				steps = append(steps, s)
			}
			return nil
		}); err != nil {
			return err
		}
		for _, s := range steps[:max(0, len(steps)-keep)] {
			if !slices.Contains(protect, s) {
				deleted = append(deleted, s)
			}
		}
		return deleteSteps(jb, func(s int) bool { _, found := slices.BinarySearch(deleted, s); return found })
	})
	if err != nil {
		return nil, fmt.Errorf("ckpt: retain job %q (keep %d, protect %v): %w", job, keep, protect, err)
	}
	return deleted, nil
}

// deleteSteps deletes the checkpoint buckets of jb whose step matches.
func deleteSteps(jb *bbolt.Bucket, match func(step int) bool) error {
	var keys [][]byte
	if err := jb.ForEachBucket(func(k []byte) error {
		if s, _, ok := parseKey(k); ok && match(s) {
			keys = append(keys, slices.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := jb.DeleteBucket(k); err != nil {
			s, tp, _ := parseKey(k)
			return fmt.Errorf("step %d tp %d: %w", s, tp, err)
		}
	}
	return nil
}

// openCkpt finds a checkpoint's bucket and decodes its header.
func openCkpt(tx *bbolt.Tx, job string, step, tp int) (*bbolt.Bucket, *header, error) {
	if step < 0 || tp < 0 {
		return nil, nil, ErrNotFound
	}
	jb := tx.Bucket(bucketJobs).Bucket([]byte(job))
	if jb == nil {
		return nil, nil, ErrNotFound
	}
	cb := jb.Bucket(ckptKey(step, tp))
	if cb == nil {
		return nil, nil, ErrNotFound
	}
	h, err := readHeader(cb, job, step, tp)
	return cb, h, err
}

// readHeader decodes a checkpoint bucket's header and checks that it
// belongs where it is stored and describes consistent data.
func readHeader(cb *bbolt.Bucket, job string, step, tp int) (*header, error) {
	b := cb.Get(keyHeader)
	if b == nil {
		return nil, fmt.Errorf("%w: header missing", ErrCorrupt)
	}
	h, err := decodeHeader(b)
	if err != nil {
		return nil, err
	}
	if h.Job != job || h.Step != step || h.TP != tp {
		return nil, fmt.Errorf("%w: header names job %q step %d tp %d", ErrCorrupt, h.Job, h.Step, h.TP)
	}
	n := h.Sections[0].Len
	if err := checkManifest(h.Manifest, n); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if h.OptimLo < 0 || h.OptimHi > n || h.OptimLo > h.OptimHi || h.Sections[1].Len != h.OptimHi-h.OptimLo || h.Sections[2].Len != h.OptimHi-h.OptimLo {
		return nil, fmt.Errorf("%w: optimizer range [%d,%d) does not match %d parameters and moments of %d and %d",
			ErrCorrupt, h.OptimLo, h.OptimHi, n, h.Sections[1].Len, h.Sections[2].Len)
	}
	return h, nil
}

// readChunks checks every chunk of a checkpoint against its header, in
// order, and passes each payload to sink (if not nil) with its section
// index and first value's index. b is only valid during the call.
func readChunks(cb *bbolt.Bucket, h *header, sink func(sec, lo int, b []byte)) error {
	sum := sha256.New()
	for i, sec := range h.Sections {
		for c, want := range sec.CRC32 {
			lo := c * h.ChunkElems
			hi := min(lo+h.ChunkElems, sec.Len)
			where := func() string { return chunkName(h, i, c, lo, hi) }
			b := cb.Get(chunkKey(sec.Name, c))
			switch {
			case b == nil:
				return fmt.Errorf("%w: %s is missing", ErrCorrupt, where())
			case len(b) != 4*(hi-lo):
				return fmt.Errorf("%w: %s holds %d bytes, want %d", ErrCorrupt, where(), len(b), 4*(hi-lo))
			}
			if got := crc32.Checksum(b, castagnoli); got != want {
				return fmt.Errorf("%w: %s: crc32c %08x, header says %08x", ErrCorrupt, where(), got, want)
			}
			sum.Write(b)
			if sink != nil {
				sink(i, lo, b)
			}
		}
	}
	if got := sum.Sum(nil); !slices.Equal(got, h.SHA256) {
		return fmt.Errorf("%w: shard sha256 %x, header says %x", ErrCorrupt, got, h.SHA256)
	}
	return nil
}

// chunkName describes chunk c of section i, values [lo,hi): its key and the
// tensors it holds part of.
func chunkName(h *header, i, c, lo, hi int) string {
	name := fmt.Sprintf("chunk %s (values [%d,%d)", chunkKey(h.Sections[i].Name, c), lo, hi)
	if i > 0 { // moments of Data[OptimLo:OptimHi]
		lo, hi = lo+h.OptimLo, hi+h.OptimLo
	}
	m := h.Manifest
	first := sort.Search(len(m), func(j int) bool { return m[j].Offset+m[j].Size() > lo })
	last := first
	for last < len(m) && m[last].Offset < hi {
		last++
	}
	switch last - first {
	case 0:
		return name + ")"
	case 1:
		return fmt.Sprintf("%s, tensor %s)", name, m[first].Name)
	default:
		return fmt.Sprintf("%s, tensors %s … %s)", name, m[first].Name, m[last-1].Name)
	}
}

// view runs a read transaction. A damaged file can make bbolt panic or fault
// on its mapping; both become ErrCorrupt instead of crashing the worker.
func (st *Store) view(fn func(*bbolt.Tx) error) error {
	return guard(func() error { return st.db.View(fn) })
}

// guard runs fn, turning a panic or a memory fault (a page past the end of
// a truncated file) into an error wrapping ErrCorrupt.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: reading the database failed: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}
