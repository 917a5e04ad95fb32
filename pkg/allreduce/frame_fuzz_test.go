package allreduce

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzParseHeader: any 48 bytes from a peer either decode to the header
// they encode (putHeader∘parseHeader is the identity) or are refused with
// ErrUnexpectedFrame; nothing panics.
func FuzzParseHeader(f *testing.F) {
	b := make([]byte, headerSize)
	putHeader(b, Header{Kind: 1, Job: 7, Generation: 3, Seq: 9, Total: 1 << 20, Chunk: 2}, 4096)
	f.Add(b)
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < headerSize {
			return
		}
		h, n, err := parseHeader(in)
		if err != nil {
			if !errors.Is(err, ErrUnexpectedFrame) {
				t.Fatalf("error %v does not wrap ErrUnexpectedFrame", err)
			}
			if binary.LittleEndian.Uint32(in) == frameMagic {
				t.Fatalf("refused a header with the right magic: %v", err)
			}
			return
		}
		out := make([]byte, headerSize)
		putHeader(out, h, n)
		if string(out) != string(in[:headerSize]) {
			t.Fatalf("decode/encode changed the header:\n%x\n%x", in[:headerSize], out)
		}
	})
}
