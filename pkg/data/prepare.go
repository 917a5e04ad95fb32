package data

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/ringmaster-ml/ringmaster/pkg/tokenizer"
)

// PrepareOptions configures Prepare.
type PrepareOptions struct {
	// ValFraction of the tokens, the last ones, goes to val.bin (nanoGPT: 0.1).
	ValFraction float64
	// Threads encode in parallel (0: GOMAXPROCS).
	Threads int
	// ChunkBytes is how much text one encoding task takes (0: 4 MiB).
	ChunkBytes int
}

// EndOfText is GPT-2's document separator; Prepare appends it after each
// file when the tokenizer has it.
const EndOfText = "<|endoftext|>"

// Prepare encodes text files into a token dataset directory that data.task
// tokens reads: train.bin and val.bin (little-endian uint16 ids, uint32 for
// vocabularies over 65,536) and meta.json with the tokenizer embedded, as
// nanoGPT's prepare.py does. Files are streamed in chunks cut where GPT-2's
// pre-tokenization does not depend on the cut, encoded on Threads cores and
// written in order, so memory stays bounded by the chunks in flight.
func Prepare(ctx context.Context, tok *tokenizer.BPE, files []string, dir string, opt PrepareOptions) (Meta, error) {
	if len(files) == 0 {
		return Meta{}, fmt.Errorf("data prepare: no input files")
	}
	if opt.ValFraction < 0 || opt.ValFraction >= 1 {
		return Meta{}, fmt.Errorf("data prepare: val fraction %g is not in [0, 1)", opt.ValFraction)
	}
	if opt.Threads <= 0 {
		opt.Threads = runtime.GOMAXPROCS(0)
	}
	if opt.ChunkBytes <= 0 {
		opt.ChunkBytes = 4 << 20
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Meta{}, fmt.Errorf("data prepare: %w", err)
	}
	meta := Meta{VocabSize: tok.Size(), DType: DTypeFor(tok.Size())}
	width := 2
	if meta.DType == "uint32" {
		width = 4
	}
	all, err := os.CreateTemp(dir, ".tokens.tmp*")
	if err != nil {
		return Meta{}, fmt.Errorf("data prepare: %w", err)
	}
	defer os.Remove(all.Name())
	defer all.Close()

	n, err := encodeFiles(ctx, tok, files, opt, bufio.NewWriterSize(all, 1<<20), width)
	if err != nil {
		return Meta{}, err
	}
	nVal := int64(math.Round(float64(n) * opt.ValFraction))
	meta.TrainTokens, meta.ValTokens = n-nVal, nVal
	if err := splitTail(all, dir, meta.TrainTokens*int64(width)); err != nil {
		return Meta{}, err
	}
	meta.Tokenizer, _ = tok.MarshalJSON()
	meta.TokenizerSHA256 = TokenizerHash(tok)
	b, _ := json.MarshalIndent(meta, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, MetaFile), append(b, '\n'), 0o644); err != nil {
		return Meta{}, fmt.Errorf("data prepare: %w", err)
	}
	return meta, nil
}

// splitTail makes dir/train.bin the first trainBytes of all, and val.bin the rest.
func splitTail(all *os.File, dir string, trainBytes int64) error {
	val, err := os.Create(filepath.Join(dir, ValBin))
	if err != nil {
		return fmt.Errorf("data prepare: %w", err)
	}
	if _, err := all.Seek(trainBytes, io.SeekStart); err != nil {
		val.Close()
		return fmt.Errorf("data prepare: %w", err)
	}
	if _, err := io.Copy(val, all); err != nil {
		val.Close()
		return fmt.Errorf("data prepare: write val.bin: %w", err)
	}
	if err := val.Close(); err != nil {
		return fmt.Errorf("data prepare: write val.bin: %w", err)
	}
	if err := all.Truncate(trainBytes); err != nil {
		return fmt.Errorf("data prepare: %w", err)
	}
	if err := all.Sync(); err != nil {
		return fmt.Errorf("data prepare: %w", err)
	}
	if err := all.Chmod(0o644); err != nil {
		return fmt.Errorf("data prepare: %w", err)
	}
	if err := os.Rename(all.Name(), filepath.Join(dir, TrainBin)); err != nil {
		return fmt.Errorf("data prepare: %w", err)
	}
	return nil
}

type chunk struct {
	seq  int
	text string
	eot  bool // append <|endoftext|> after it (the end of a file)
	ids  []int32
}

// encodeFiles streams files through Threads encoders and writes their ids in
// file and chunk order; it returns the number of ids written.
func encodeFiles(ctx context.Context, tok *tokenizer.BPE, files []string, opt PrepareOptions, w *bufio.Writer, width int) (int64, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	todo, done := make(chan chunk, opt.Threads), make(chan chunk, opt.Threads)
	eot, hasEOT := tok.Special(EndOfText)

	go func() { // reader: cut each file into chunks at safe places
		defer close(todo)
		seq := 0
		for _, path := range files {
			if err := readChunks(ctx, path, opt.ChunkBytes, func(text string, last bool) bool {
				select {
				case todo <- chunk{seq: seq, text: text, eot: last && hasEOT}:
					seq++
					return true
				case <-ctx.Done():
					return false
				}
			}); err != nil {
				cancel(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range opt.Threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cache := tokenizer.Cache{}
			for c := range todo {
				c.ids = tok.AppendEncode(nil, c.text, cache)
				if c.eot {
					c.ids = append(c.ids, eot)
				}
				c.text = ""
				select {
				case done <- c:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	pending := map[int][]int32{}
	next, n := 0, int64(0)
	buf := make([]byte, 0, 1<<16)
	for c := range done {
		pending[c.seq] = c.ids
		for ids, ok := pending[next]; ok; ids, ok = pending[next] {
			delete(pending, next)
			next++
			for _, id := range ids {
				if width == 2 {
					buf = binary.LittleEndian.AppendUint16(buf, uint16(id))
				} else {
					buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
				}
				if len(buf) >= 1<<16 {
					if _, err := w.Write(buf); err != nil {
						cancel(err)
					}
					buf = buf[:0]
				}
			}
			n += int64(len(ids))
		}
	}
	if _, err := w.Write(buf); err != nil {
		cancel(err)
	}
	if err := w.Flush(); err != nil {
		cancel(err)
	}
	if err := context.Cause(ctx); err != nil {
		return 0, fmt.Errorf("data prepare: %w", err)
	}
	return n, nil
}

// readChunks reads path in pieces of about size bytes, each cut where
// tokenizer.Segments may cut, and passes them to emit (last: the file's
// final piece) until emit returns false.
func readChunks(ctx context.Context, path string, size int, emit func(text string, last bool) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %w", err)
	}
	defer f.Close()
	buf := make([]byte, 0, 2*size)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(f, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof := rerr == io.EOF || rerr == io.ErrUnexpectedEOF
		if rerr != nil && !eof {
			return fmt.Errorf("read %s: %w", path, rerr)
		}
		if eof {
			if !emit(string(buf), true) {
				return ctx.Err()
			}
			return nil
		}
		segs := tokenizer.Segments(string(buf), size)
		if len(segs) == 1 { // no safe cut yet: read more
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			continue
		}
		keep := segs[len(segs)-1]
		for _, s := range segs[:len(segs)-1] {
			if !emit(s, false) {
				return ctx.Err()
			}
		}
		buf = append(buf[:0], keep...)
	}
}
