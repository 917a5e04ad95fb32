package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sampleTensors() []Tensor {
	return []Tensor{
		{Name: "wte", Shape: []int{3, 2}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "ln.bias", Shape: []int{2}, Data: []float32{-0.5, float32(math.Inf(1))}},
		{Name: "scalar", Shape: []int{}, Data: []float32{7}},
		{Name: "empty", Shape: []int{0, 5}, Data: nil},
		{Name: "h.0.\"quoted\"", Shape: []int{1, 1, 1}, Data: []float32{float32(math.Copysign(0, -1))}},
	}
}

func encode(t *testing.T, tensors []Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, meta); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

// sameTensors compares tensors by name, shape and exact float bits.
func sameTensors(t *testing.T, got, want []Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d tensors, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
			t.Fatalf("tensor %d: got %q %v (%d values), want %q %v (%d values)",
				i, g.Name, g.Shape, len(g.Data), w.Name, w.Shape, len(w.Data))
		}
		for j := range w.Data {
			if math.Float32bits(g.Data[j]) != math.Float32bits(w.Data[j]) {
				t.Fatalf("tensor %q[%d] = %v, want %v", w.Name, j, g.Data[j], w.Data[j])
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	want := sampleTensors()
	meta := map[string]string{"format": "pt", "step": "100"}
	b := encode(t, want, meta)
	hdrLen := binary.LittleEndian.Uint64(b)
	if hdrLen%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hdrLen)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	// Decode returns tensors in buffer order; "empty" (0 bytes) sits between
	// "scalar" and the last tensor at the same offset, so sort expectation the same way.
	wantOrder := []Tensor{want[0], want[1], want[2], want[3], want[4]}
	sameTensors(t, f.Tensors, wantOrder)
	if len(f.Metadata) != 2 || f.Metadata["format"] != "pt" || f.Metadata["step"] != "100" {
		t.Errorf("metadata = %v, want %v", f.Metadata, meta)
	}
	if got, ok := f.Get("scalar"); !ok || got.Data[0] != 7 {
		t.Errorf("Get(scalar) = %v, %v", got, ok)
	}
	if _, ok := f.Get("missing"); ok {
		t.Error("Get(missing) found something")
	}
}

func TestNoMetadata(t *testing.T) {
	f, err := Decode(encode(t, sampleTensors()[:1], nil))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata = %v, want nil", f.Metadata)
	}
	f, err = Decode(encode(t, nil, nil))
	if err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if len(f.Tensors) != 0 {
		t.Errorf("empty file has %d tensors", len(f.Tensors))
	}
}

func TestWriteReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	want := sampleTensors()[:2]
	if err := WriteFile(path, want, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sameTensors(t, f.Tensors, want)
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files after WriteFile, want 1 (temp file left behind?)", len(entries))
	}
	if err := WriteFile(path, []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1}}}, nil); err == nil {
		t.Error("WriteFile of a bad tensor succeeded")
	}
	if f, err := ReadFile(path); err != nil || len(f.Tensors) != 2 {
		t.Errorf("failed WriteFile clobbered the existing file: %v", err)
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}

func TestGolden(t *testing.T) {
	f, err := ReadFile(filepath.Join("testdata", "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	bf := func(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ 0xffff) }
	want := []Tensor{
		{Name: "b.f16", Shape: []int{4}, Data: []float32{1.5, -2, 65504, 6.103515625e-05 * 0.5}},
		{Name: "a.f32", Shape: []int{2, 3}, Data: []float32{-1, -0.5, 0, 0.5, 1, 1.5}},
		{Name: "e.empty", Shape: []int{0, 4}, Data: []float32{}},
		{Name: "c.bf16", Shape: []int{2, 2}, Data: []float32{1, -0.5, bf(3e38), 0.0078125}},
		{Name: "d.f64", Shape: []int{}, Data: []float32{3.25}},
	}
	sameTensors(t, f.Tensors, want)
	if f.Metadata["format"] != "pt" || f.Metadata["source"] != "gen_golden.py" || len(f.Metadata) != 2 {
		t.Errorf("metadata = %v", f.Metadata)
	}
}

func TestHalfToFloat32(t *testing.T) {
	cases := []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-08},
		{0x03ff, 6.097555e-05}, {0x0400, 6.1035156e-05}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		if got := halfToFloat32(c.h); got != c.want {
			t.Errorf("halfToFloat32(%#04x) = %g, want %g", c.h, got, c.want)
		}
	}
	if got := halfToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat32(NaN) = %g", got)
	}
	if got := halfToFloat32(0x8000); math.Float32bits(got) != 0x80000000 {
		t.Errorf("halfToFloat32(-0) bits = %#x", math.Float32bits(got))
	}
}

// raw builds a file from a literal header and a data buffer.
func raw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestDecodeRejects(t *testing.T) {
	eight := make([]byte, 8)
	huge := binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1)
	past := binary.LittleEndian.AppendUint64(nil, 100)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "shorter than the 8-byte header length"},
		{"header too large", append(huge, '{', '}'), "exceeds the"},
		{"header past end", append(past, "{}"...), "runs past the end"},
		{"not json", raw(`{"a":`, nil), "not valid JSON"},
		{"not an object", raw(`[1,2]`, nil), "does not start with '{'"},
		{"trailing bytes", raw(`{} x`, nil), "trailing bytes"},
		{"unknown dtype", raw(`{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), `unknown dtype "F17"`},
		{"unsupported dtype", raw(`{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, eight), "dtype I64 is not supported"},
		{"missing field", raw(`{"a":{"dtype":"F32","shape":[1]}}`, nil), "needs dtype, shape and data_offsets"},
		{"unknown field", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), "unknown field"},
		{"size mismatch", raw(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "needs 12 bytes but data_offsets [0, 8] span 8"},
		{"negative dim", raw(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, nil), "out of range"},
		{"end before begin", raw(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, nil), "end before they begin"},
		{"offsets arity", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, nil), "want [begin, end]"},
		{"fractional offset", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4.5]}}`, nil), "not a valid byte offset"},
		{"out of range", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "run past the 4-byte data buffer"},
		{"overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "overlap"},
		{"hole", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "leave a hole at [0, 4)"},
		{"uncovered tail", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "cover 4 bytes but the data buffer is 8"},
		{"duplicate", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), `names "a" twice`},
		{"metadata not strings", raw(`{"__metadata__":{"k":1}}`, nil), `__metadata__["k"] is not a string`},
		{"metadata not object", raw(`{"__metadata__":[1]}`, nil), "must be an object of strings"},
		{"overflow shape", raw(`{"a":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,4]}}`, nil), "too many elements"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.file)
			if err == nil {
				t.Fatalf("Decode succeeded, want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	cases := []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"duplicate", []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{2}}}, `duplicate tensor name "a"`},
		{"length mismatch", []Tensor{{Name: "a", Shape: []int{2, 2}, Data: []float32{1, 2, 3}}}, "holds 4 values but Data has 3"},
		{"negative dim", []Tensor{{Name: "a", Shape: []int{-2}, Data: nil}}, "negative"},
		{"reserved name", []Tensor{{Name: "__metadata__", Shape: []int{}, Data: []float32{1}}}, "reserved"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Encode(&bytes.Buffer{}, c.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Encode error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	if err := Encode(&buf, sampleTensors(), map[string]string{"a": "b"}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	if g, err := os.ReadFile(filepath.Join("testdata", "golden.safetensors")); err == nil {
		f.Add(g)
	}
	f.Add(raw(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, []byte{0, 0x7e, 1, 0x80}))
	f.Add(raw(`{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"F64","shape":[],"data_offsets":[2,10]}}`, make([]byte, 10)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		f1, err := Decode(b)
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := Encode(&out, f1.Tensors, f1.Metadata); err != nil {
			t.Fatalf("re-encode of a decoded file failed: %v", err)
		}
		f2, err := Decode(out.Bytes())
		if err != nil {
			t.Fatalf("decode of re-encoded file failed: %v", err)
		}
		sameTensors(t, f2.Tensors, f1.Tensors)
		if len(f1.Metadata) != len(f2.Metadata) {
			t.Fatalf("metadata %v became %v", f1.Metadata, f2.Metadata)
		}
		for k, v := range f1.Metadata {
			if f2.Metadata[k] != v {
				t.Fatalf("metadata %v became %v", f1.Metadata, f2.Metadata)
			}
		}
	})
}
