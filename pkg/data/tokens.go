package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/tokenizer"
)

// Files of a token dataset directory (nanoGPT's prepare.py layout).
const (
	TrainBin = "train.bin"
	ValBin   = "val.bin"
	MetaFile = "meta.json"
)

// Meta is a token dataset's meta.json, written by ringctl data prepare.
type Meta struct {
	VocabSize   int    `json:"vocab_size"`
	DType       string `json:"dtype"` // uint16 | uint32 (little-endian)
	TrainTokens int64  `json:"train_tokens"`
	ValTokens   int64  `json:"val_tokens"`
	// TokenizerSHA256 is the hex sha256 of the tokenizer's tokenizer.json
	// form (TokenizerHash): a data.tokenizer given for these files must match.
	TokenizerSHA256 string          `json:"tokenizer_sha256,omitempty"`
	Tokenizer       json.RawMessage `json:"tokenizer,omitempty"` // the tokenizer.json the ids came from
}

// TokenizerHash is the hex sha256 of t's tokenizer.json form: the same for a
// tokenizer read from any of its file forms.
func TokenizerHash(t *tokenizer.BPE) string {
	b, _ := t.MarshalJSON()
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// DTypeFor is the narrowest id type for a vocabulary: uint16 up to 65,536
// ids (GPT-2's 50,257 fit), uint32 beyond.
func DTypeFor(vocabSize int) string {
	if vocabSize <= 1<<16 {
		return "uint16"
	}
	return "uint32"
}

// tokenSeq is a split's token ids, in memory or memory-mapped.
type tokenSeq interface {
	Len() int
	Read(dst []int32, at int) // dst = ids[at : at+len(dst)]
}

type memSeq []int32

func (s memSeq) Len() int                 { return len(s) }
func (s memSeq) Read(dst []int32, at int) { copy(dst, s[at:]) }

// fileSeq is a memory-mapped .bin file of little-endian uint16 or uint32 ids.
// The mapping is released when the sequence becomes unreachable.
type fileSeq struct {
	b     []byte
	width int
}

func (s *fileSeq) Len() int { return len(s.b) / s.width }

func (s *fileSeq) Read(dst []int32, at int) {
	if s.width == 2 {
		b := s.b[2*at : 2*(at+len(dst))]
		for i := range dst {
			dst[i] = int32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return
	}
	b := s.b[4*at : 4*(at+len(dst))]
	for i := range dst {
		dst[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// mapTokens maps path read-only; its pages are read on demand, never whole.
func mapTokens(path, dtype string) (*fileSeq, error) {
	width := map[string]int{"uint16": 2, "uint32": 4}[dtype]
	if width == 0 {
		return nil, fmt.Errorf("data.path: meta.json dtype %q is unknown; want uint16 or uint32", dtype)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data.path: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("data.path: %w", err)
	}
	n := st.Size()
	if n == 0 || n%int64(width) != 0 {
		return nil, fmt.Errorf("data.path: %s has %d bytes, not a non-empty whole number of %s ids; it is truncated or not a token file", path, n, dtype)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("data.path: map %s: %w", path, err)
	}
	// batches sample windows at random places: read ahead nothing
	_ = syscall.Madvise(b, syscall.MADV_RANDOM)
	s := &fileSeq{b: b, width: width}
	runtime.AddCleanup(s, func(b []byte) { _ = syscall.Munmap(b) }, b)
	return s, nil
}

// openTokens opens a token dataset: data.path holds train.bin and val.bin
// (and meta.json from ringctl data prepare), data.tokenizer or meta.json
// gives the tokenizer. GPT rows are windows of block_size ids, as nanoGPT's
// get_batch; BERT rows are sentence pairs [CLS] A [SEP] B [SEP] (A and B
// consecutive spans, token types 0 and 1) with masking as for text, and
// [CLS] [SEP] [MASK] taken from the tokenizer's specials; encoder–decoder
// rows are a span of the stream and its continuation (continuationTask).
func (d *Dataset) openTokens(spec jobspec.DataSpec, arch model.Arch, blockSize int) error {
	dir := spec.Path
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("data.path: %w; for task tokens give the directory that holds train.bin and val.bin", err)
	} else if !st.IsDir() {
		return fmt.Errorf("data.path: %s is a file, not a directory; for task tokens give the directory that holds train.bin and val.bin (ringctl data prepare -o DIR writes one)", dir)
	}
	var meta Meta
	switch b, err := os.ReadFile(filepath.Join(dir, MetaFile)); {
	case err == nil:
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("data.path: %s: %w", filepath.Join(dir, MetaFile), err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if spec.Tokenizer == "" {
			return fmt.Errorf("data.tokenizer: %s has no meta.json, so name the tokenizer the ids came from (tokenizer.json, vocab.json or .tiktoken)", dir)
		}
	default:
		return fmt.Errorf("data.path: %w", err)
	}
	var tok *tokenizer.BPE
	var err error
	if spec.Tokenizer != "" {
		if tok, err = tokenizer.Load(spec.Tokenizer); err != nil {
			return fmt.Errorf("data.tokenizer: %w", err)
		}
	} else {
		if len(meta.Tokenizer) == 0 {
			return fmt.Errorf("data.tokenizer: %s has no tokenizer; set data.tokenizer", filepath.Join(dir, MetaFile))
		}
		if tok, err = tokenizer.ParseHF(meta.Tokenizer); err != nil {
			return fmt.Errorf("data.path: %s: %w", filepath.Join(dir, MetaFile), err)
		}
	}
	if meta.VocabSize != 0 && meta.VocabSize != tok.Size() {
		return fmt.Errorf("data.tokenizer: has %d tokens but %s was made with %d; use the tokenizer the files were prepared with",
			tok.Size(), filepath.Join(dir, MetaFile), meta.VocabSize)
	}
	if h := meta.TokenizerSHA256; h != "" && spec.Tokenizer != "" && h != TokenizerHash(tok) {
		return fmt.Errorf("data.tokenizer: %s is not the tokenizer %s was prepared with (tokenizer sha256 %.12s…, meta.json says %.12s…); use that one, or leave data.tokenizer empty to take it from meta.json",
			spec.Tokenizer, dir, TokenizerHash(tok), h)
	}
	if meta.DType == "" {
		meta.DType = DTypeFor(tok.Size())
	}
	bert := arch == model.ArchBERT
	t := &textTask{T: blockSize, bert: bert, segments: bert, nChars: tok.Size() - len(tok.Specials())}
	for _, s := range []struct {
		name string
		dst  *tokenSeq
	}{{TrainBin, &t.trainSeq}, {ValBin, &t.valSeq}} {
		seq, err := mapTokens(filepath.Join(dir, s.name), meta.DType)
		if err != nil {
			return err
		}
		*s.dst = seq
	}
	if err := t.checkFit(dir, blockSize); err != nil {
		return err
	}
	if arch == model.ArchEncDec {
		return d.useContinuation(t, tok, blockSize)
	}
	if t.bert {
		var ok [3]bool
		t.cls, ok[0] = tok.Special(CLSToken)
		t.sep, ok[1] = tok.Special(SEPToken)
		t.mask, ok[2] = tok.Special(MaskToken)
		if ok != [3]bool{true, true, true} {
			return fmt.Errorf("data.tokenizer: BERT needs the special tokens %s %s %s; train one with ringctl tokenizer train -special '%s,%s,%s,%s'",
				CLSToken, SEPToken, MaskToken, PadToken, CLSToken, SEPToken, MaskToken)
		}
		if err := t.setMask(spec.MaskProb, blockSize); err != nil {
			return err
		}
	}
	d.task, d.vocab, d.checkIDs = t, tok, true
	d.info.T, d.info.TrainTokens, d.info.ValTokens = blockSize, t.trainSeq.Len(), t.valSeq.Len()
	return nil
}

// continuationTask is the encoder–decoder on a token stream: the encoder
// reads S = block_size ids of it, the decoder writes the T = block_size ids
// that follow, from a start token (teacher forcing: input [BOS] + y[:T-1],
// target y). Every position is real, so no padding masks.
type continuationTask struct {
	trainSeq, valSeq tokenSeq
	S, T             int
	bos              int32
}

// useContinuation makes d's task the continuation of spans of t's files.
// The start token is the tokenizer's [BOS], else its <|endoftext|> (GPT-2's
// tokenizer uses it as the start of a document).
func (d *Dataset) useContinuation(t *textTask, tok Tokenizer, blockSize int) error {
	bos, ok := tok.Special(BOSToken)
	if !ok {
		bos, ok = tok.Special(EndOfText)
	}
	if !ok {
		return fmt.Errorf("data.tokenizer: the encoder–decoder starts decoding from %s or %s, and this tokenizer has neither; train one with ringctl tokenizer train -special '%s'",
			BOSToken, EndOfText, EndOfText)
	}
	c := &continuationTask{trainSeq: t.trainSeq, valSeq: t.valSeq, S: blockSize, T: blockSize, bos: bos}
	for _, s := range []struct {
		name string
		seq  tokenSeq
	}{{"train", c.trainSeq}, {"val", c.valSeq}} {
		if need := c.S + c.T + 1; s.seq.Len() < need {
			return fmt.Errorf("model.block_size: %d source + %d target tokens do not fit the %s split (%d tokens); lower block_size to at most %d",
				c.S, c.T, s.name, s.seq.Len(), (s.seq.Len()-1)/2)
		}
	}
	d.task, d.vocab, d.checkIDs = c, tok, true
	d.info.T, d.info.S, d.info.TrainTokens, d.info.ValTokens = c.T, c.S, c.trainSeq.Len(), c.valSeq.Len()
	return nil
}

func (c *continuationTask) dims(batchKey, int) (int, int) { return c.T, c.S }

func (c *continuationTask) fields() fields { return fields{src: true} }

func (c *continuationTask) count(_ batchKey, globalRows int) int { return globalRows * c.T }

func (c *continuationTask) row(b *model.Batch, r int, rng rowRNG, s Split) {
	seq := c.trainSeq
	if s == Val {
		seq = c.valSeq
	}
	S, T := c.S, c.T
	i := rng.intN(seq.Len() - S - T)
	src, sv := b.Src[r*S:(r+1)*S], b.SrcValid[r*S:(r+1)*S]
	x, y := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T]
	seq.Read(src, i)
	for j := range sv {
		sv[j] = 1
	}
	seq.Read(y, i+S)
	x[0] = c.bos
	copy(x[1:], y[:T-1])
}
