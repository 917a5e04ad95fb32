package ckpt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// FormatVersion is the version of the on-disk shard layout written by Put.
const FormatVersion = 1

var (
	bucketJobs  = []byte("jobs")
	keyHeader   = []byte("header")
	headerMagic = []byte("RMCK")
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// sections are the float32 streams of a shard, in checksum order.
var sections = [...]string{"data", "m", "v"}

// header is the JSON metadata stored under keyHeader.
type header struct {
	Version    int               `json:"version"`
	Job        string            `json:"job"`
	Step       int               `json:"step"`
	Generation uint64            `json:"generation"`
	TP         int               `json:"tp"`
	TPSize     int               `json:"tp_size"`
	ModelHash  string            `json:"model_hash,omitempty"`
	Spec       []byte            `json:"spec,omitempty"`
	Iter       int               `json:"iter"`
	Meta       map[string]string `json:"meta,omitempty"`
	Created    time.Time         `json:"created"`
	Manifest   []Tensor          `json:"manifest"`
	OptimLo    int               `json:"optim_lo"`
	OptimHi    int               `json:"optim_hi"`
	OptimSteps int               `json:"optim_steps"`
	ChunkElems int               `json:"chunk_elems"` // float32 values per chunk (the last may be shorter)
	Sections   []section         `json:"sections"`    // data, m, v
	SHA256     []byte            `json:"sha256"`      // over every chunk payload, in section and chunk order
}

// section describes one float32 stream: its length and its chunks' CRC32C.
type section struct {
	Name  string   `json:"name"`
	Len   int      `json:"len"`
	CRC32 []uint32 `json:"crc32c"`
}

func (h *header) info() Info {
	n := 0
	for _, s := range h.Sections {
		n += s.Len
	}
	return Info{Job: h.Job, Step: h.Step, Generation: h.Generation, TP: h.TP, TPSize: h.TPSize, Iter: h.Iter,
		Bytes: 4 * int64(n), Created: h.Created, SHA256: h.SHA256}
}

// encodeHeader frames h as magic, version (uint32 LE), JSON, CRC32C of all before.
func encodeHeader(h *header) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	b := make([]byte, 0, len(headerMagic)+4+len(js)+4)
	b = append(b, headerMagic...)
	b = binary.LittleEndian.AppendUint32(b, FormatVersion)
	b = append(b, js...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// decodeHeader checks the framing of a stored header and decodes it. The
// errors wrap ErrCorrupt or ErrUnsupportedVersion; the caller adds which
// checkpoint it belongs to.
func decodeHeader(b []byte) (*header, error) {
	if len(b) < len(headerMagic)+8 || !bytes.Equal(b[:len(headerMagic)], headerMagic) {
		return nil, fmt.Errorf("%w: header is not a ringmaster checkpoint header (%d bytes)", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("%w: header checksum %08x, stored %08x", ErrCorrupt, got, sum)
	}
	if v := binary.LittleEndian.Uint32(body[len(headerMagic):]); v != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d (this build reads %d)", ErrUnsupportedVersion, v, FormatVersion)
	}
	var h header
	if err := json.Unmarshal(body[len(headerMagic)+4:], &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if h.ChunkElems <= 0 || len(h.Sections) != len(sections) {
		return nil, fmt.Errorf("%w: header has chunk size %d and %d sections", ErrCorrupt, h.ChunkElems, len(h.Sections))
	}
	for i, s := range h.Sections {
		if s.Name != sections[i] || s.Len < 0 || len(s.CRC32) != numChunks(s.Len, h.ChunkElems) {
			return nil, fmt.Errorf("%w: header section %d (%q, %d values, %d checksums) is malformed", ErrCorrupt, i, s.Name, s.Len, len(s.CRC32))
		}
	}
	return &h, nil
}

// ckptKey is the key of a checkpoint bucket inside its job's bucket: step
// then tp, big-endian, so keys sort by step then tp.
func ckptKey(step, tp int) []byte {
	k := make([]byte, 12)
	binary.BigEndian.PutUint64(k, uint64(step))
	binary.BigEndian.PutUint32(k[8:], uint32(tp))
	return k
}

// parseKey is the inverse of ckptKey.
func parseKey(k []byte) (step, tp int, ok bool) {
	if len(k) != 12 {
		return 0, 0, false
	}
	s := binary.BigEndian.Uint64(k)
	if s > math.MaxInt64 {
		return 0, 0, false
	}
	return int(s), int(binary.BigEndian.Uint32(k[8:])), true
}

// chunkKey is the key of chunk i of a section.
func chunkKey(sec string, i int) []byte { return fmt.Appendf(nil, "%s/%06d", sec, i) }

func numChunks(n, per int) int { return (n + per - 1) / per }

// encodeFloats returns x as little-endian float32 bytes.
func encodeFloats(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, f := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// decodeFloats fills dst from little-endian float32 bytes (len(b) = 4·len(dst)).
func decodeFloats(dst []float32, b []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
