package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxHeaderSize is the largest JSON header accepted (100 MiB).
const MaxHeaderSize = 100 << 20

// metadataKey is the reserved header key holding free-form string metadata.
const metadataKey = "__metadata__"

// Tensor is one named float32 tensor. Data holds product(Shape) values in
// row-major order; an empty Shape is a scalar (one value).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// File is a decoded safetensors file. Tensors are in data-buffer order.
type File struct {
	Tensors  []Tensor
	Metadata map[string]string // nil when the file has no "__metadata__"
}

// Get returns the tensor called name.
func (f *File) Get(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// dtypeSize is the byte width of every dtype the format defines; the ones
// Decode can convert to float32 are listed in decodeElems.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// numel returns the product of shape, or an error for a negative dimension
// or a product that does not fit in an int.
func numel(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("dimension %d is negative (%d)", i, d)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// Encode writes tensors as F32 in the given order, with metadata (may be nil)
// in the header.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		comma()
		hdr.WriteString(`"` + metadataKey + `":{`)
		for i, k := range keys {
			if i > 0 {
				hdr.WriteByte(',')
			}
			writeJSONString(&hdr, k)
			hdr.WriteByte(':')
			writeJSONString(&hdr, metadata[k])
		}
		hdr.WriteByte('}')
	}
	seen := make(map[string]bool, len(tensors))
	var off int64
	for _, t := range tensors {
		if t.Name == metadataKey {
			return fmt.Errorf("safetensors: encode: tensor name %q is reserved for metadata; rename the tensor", t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("safetensors: encode: duplicate tensor name %q; every tensor needs a unique name", t.Name)
		}
		seen[t.Name] = true
		n, err := numel(t.Shape)
		if err != nil {
			return fmt.Errorf("safetensors: encode: tensor %q: %w", t.Name, err)
		}
		if n != len(t.Data) {
			return fmt.Errorf("safetensors: encode: tensor %q: shape %v holds %d values but Data has %d; fix Shape or Data",
				t.Name, t.Shape, n, len(t.Data))
		}
		comma()
		writeJSONString(&hdr, t.Name)
		hdr.WriteString(`:{"dtype":"F32","shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				hdr.WriteByte(',')
			}
			fmt.Fprintf(&hdr, "%d", d)
		}
		end := off + 4*int64(n)
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	if hdr.Len() > MaxHeaderSize {
		return fmt.Errorf("safetensors: encode: header is %d bytes, over the %d-byte limit; write fewer tensors per file",
			hdr.Len(), MaxHeaderSize)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: write header length: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("safetensors: write header: %w", err)
	}
	buf := make([]byte, 0, 64<<10)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("safetensors: write tensor %q: %w", t.Name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("safetensors: write data: %w", err)
		}
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

// headerEntry is one tensor's header record as it appears in the file.
type headerEntry struct {
	name   string
	dtype  string
	shape  []int
	begin  int64
	end    int64
	numel  int
	elemSz int
}

// Decode parses a whole safetensors file held in b.
func Decode(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("safetensors: file is %d bytes, shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("safetensors: header length %d runs past the end of the %d-byte file", n, len(b))
	}
	hdr := b[8 : 8+n]
	data := b[8+n:]
	entries, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	if err := checkCoverage(entries, int64(len(data))); err != nil {
		return nil, err
	}
	f := &File{Tensors: make([]Tensor, len(entries)), Metadata: meta}
	for i, e := range entries {
		vals, err := decodeElems(e.dtype, data[e.begin:e.end], e.numel)
		if err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", e.name, err)
		}
		f.Tensors[i] = Tensor{Name: e.name, Shape: e.shape, Data: vals}
	}
	return f, nil
}

// parseHeader reads the JSON header, keeping tensors in document order and
// rejecting duplicate keys (which encoding/json would silently merge).
func parseHeader(hdr []byte) ([]headerEntry, map[string]string, error) {
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, errors.New("safetensors: header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header is not valid JSON: %w", err)
	}
	var (
		entries []headerEntry
		meta    map[string]string
		seen    = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: header is not valid JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("safetensors: header is not valid JSON: key %v is not a string", tok)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("safetensors: header names %q twice", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("safetensors: header is not valid JSON at %q: %w", name, err)
		}
		if name == metadataKey {
			if meta, err = parseMetadata(raw); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := parseEntry(name, raw)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, nil, fmt.Errorf("safetensors: header is not valid JSON: %w", err)
	}
	rest := hdr[dec.InputOffset():]
	if len(bytes.TrimRight(rest, " \t\r\n")) != 0 {
		return nil, nil, errors.New("safetensors: header has trailing bytes after the JSON object")
	}
	return entries, meta, nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	var anyMeta map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&anyMeta); err != nil || anyMeta == nil {
		return nil, fmt.Errorf("safetensors: %s must be an object of strings", metadataKey)
	}
	meta := make(map[string]string, len(anyMeta))
	for k, v := range anyMeta {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("safetensors: %s[%q] is not a string", metadataKey, k)
		}
		meta[k] = s
	}
	return meta, nil
}

func parseEntry(name string, raw json.RawMessage) (headerEntry, error) {
	var info struct {
		DType       *string   `json:"dtype"`
		Shape       []int64   `json:"shape"`
		DataOffsets []float64 `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: bad header entry: %w", name, err)
	}
	if info.DType == nil || info.Shape == nil || info.DataOffsets == nil {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: header entry needs dtype, shape and data_offsets", name)
	}
	sz, ok := dtypeSizes[*info.DType]
	if !ok {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: unknown dtype %q", name, *info.DType)
	}
	shape := make([]int, len(info.Shape))
	for i, d := range info.Shape {
		if d < 0 || d > math.MaxInt32 {
			return headerEntry{}, fmt.Errorf("safetensors: tensor %q: dimension %d is out of range (%d)", name, i, d)
		}
		shape[i] = int(d)
	}
	n, err := numel(shape)
	if err != nil {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: %w", name, err)
	}
	if len(info.DataOffsets) != 2 {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: data_offsets has %d values, want [begin, end]", name, len(info.DataOffsets))
	}
	var off [2]int64
	for i, v := range info.DataOffsets {
		if v != math.Trunc(v) || v < 0 || v > 1<<53 {
			return headerEntry{}, fmt.Errorf("safetensors: tensor %q: data_offsets[%d] = %v is not a valid byte offset", name, i, v)
		}
		off[i] = int64(v)
	}
	if off[1] < off[0] {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] end before they begin", name, off[0], off[1])
	}
	if want := int64(n) * int64(sz); off[1]-off[0] != want {
		return headerEntry{}, fmt.Errorf("safetensors: tensor %q: %s shape %v needs %d bytes but data_offsets [%d, %d] span %d",
			name, *info.DType, shape, want, off[0], off[1], off[1]-off[0])
	}
	return headerEntry{name: name, dtype: *info.DType, shape: shape, begin: off[0], end: off[1], numel: n, elemSz: sz}, nil
}

// checkCoverage sorts entries by offset and requires them to tile the data
// buffer exactly: the first begins at 0, each begins where the previous ends,
// the last ends at the buffer's end.
func checkCoverage(entries []headerEntry, size int64) error {
	slices.SortStableFunc(entries, func(a, b headerEntry) int {
		if a.begin != b.begin {
			return cmpInt64(a.begin, b.begin)
		}
		if a.end != b.end {
			return cmpInt64(a.end, b.end)
		}
		return strings.Compare(a.name, b.name)
	})
	var pos int64
	for _, e := range entries {
		if e.end > size {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] run past the %d-byte data buffer", e.name, e.begin, e.end, size)
		}
		if e.begin < pos {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] overlap the previous tensor (ends at %d)", e.name, e.begin, e.end, pos)
		}
		if e.begin > pos {
			return fmt.Errorf("safetensors: tensor %q: data_offsets [%d, %d] leave a hole at [%d, %d)", e.name, e.begin, e.end, pos, e.begin)
		}
		pos = e.end
	}
	if pos != size {
		return fmt.Errorf("safetensors: tensors cover %d bytes but the data buffer is %d bytes", pos, size)
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decodeElems converts n little-endian elements of dtype to float32.
func decodeElems(dtype string, b []byte, n int) ([]float32, error) {
	out := make([]float32, n)
	switch dtype {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	default:
		return nil, fmt.Errorf("dtype %s is not supported (want F32, F16, BF16 or F64)", dtype)
	}
	return out, nil
}

// halfToFloat32 converts an IEEE 754 binary16 value exactly.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // ±0
		return math.Float32frombits(sign)
	}
	// subnormal: value = mant · 2^-24, exact in float32
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// ReadFile reads and decodes the safetensors file at path.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// WriteFile encodes tensors to a temporary file next to path, syncs it and
// renames it into place, so readers never see a partial file.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Encode(tmp, tensors, metadata); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
