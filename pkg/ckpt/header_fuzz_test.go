package ckpt

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
)

// FuzzDecodeHeader: a stored checkpoint header whose framing is intact
// (magic, version, CRC32C recomputed over whatever JSON the fuzzer gives)
// is either decoded into a consistent header or refused with ErrCorrupt;
// nothing panics, so a damaged or hostile header cannot crash a worker.
func FuzzDecodeHeader(f *testing.F) {
	f.Add([]byte(`{"job":"job-1","step":100,"chunk_elems":4,"sections":[]}`))
	f.Add([]byte(`{"chunk_elems":-1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, js []byte) {
		b := append([]byte{}, headerMagic...)
		b = binary.LittleEndian.AppendUint32(b, FormatVersion)
		b = append(b, js...)
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
		h, err := decodeHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for i, s := range h.Sections {
			if s.Len < 0 || len(s.CRC32) != numChunks(s.Len, h.ChunkElems) {
				t.Fatalf("section %d accepted with %d values and %d checksums", i, s.Len, len(s.CRC32))
			}
		}
		_ = h.info()
		// Any flipped byte in the framed header is caught by the checksum.
		b[len(headerMagic)+5] ^= 1
		if _, err := decodeHeader(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a flipped byte decoded: %v", err)
		}
	})
}
