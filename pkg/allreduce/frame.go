package allreduce

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// Kind names a collective; it travels in every frame so that ranks calling
// different collectives at the same sequence number are detected.
type Kind uint32

// The kinds of collective.
const (
	KindAllReduce Kind = iota + 1
	KindReduceScatter
	KindAllGather
	KindBroadcast
	KindBarrier
)

func (k Kind) String() string {
	switch k {
	case KindAllReduce:
		return "all_reduce"
	case KindReduceScatter:
		return "reduce_scatter"
	case KindAllGather:
		return "all_gather"
	case KindBroadcast:
		return "broadcast"
	case KindBarrier:
		return "barrier"
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// Header identifies one frame of one collective of one group.
type Header struct {
	Job        uint64 // JobHash of the job id
	Generation uint64
	Seq        uint64 // collective sequence number within the group
	Chunk      uint32 // frame index within the collective
	Kind       Kind
	Total      uint64 // element count of the collective (per rank)
}

// JobHash is the 64-bit FNV-1a hash of a job id, as carried in frame headers.
func JobHash(job string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(job))
	return h.Sum64()
}

// check reports why a received frame (got, with gotLen payload bytes) is not
// the frame the receiver expects (want, wantLen bytes), or nil.
func check(want, got Header, wantLen, gotLen int) error {
	switch {
	case got.Job != want.Job:
		return fmt.Errorf("frame of job %#x, group of job %#x: %w", got.Job, want.Job, ErrUnexpectedFrame)
	case got.Generation != want.Generation:
		return fmt.Errorf("frame of generation %d, group of generation %d: %w", got.Generation, want.Generation, ErrStaleGeneration)
	case got.Seq != want.Seq || got.Chunk != want.Chunk:
		return fmt.Errorf("frame seq %d chunk %d, expected seq %d chunk %d: %w", got.Seq, got.Chunk, want.Seq, want.Chunk, ErrUnexpectedFrame)
	case got.Kind != want.Kind:
		return fmt.Errorf("peer runs %v, this rank runs %v (seq %d): %w", got.Kind, want.Kind, want.Seq, ErrMismatch)
	case got.Total != want.Total || gotLen != wantLen:
		return fmt.Errorf("peer's %v has %d elements (chunk %d: %d bytes), this rank's %d (%d bytes) (seq %d): %w",
			want.Kind, got.Total, got.Chunk, gotLen, want.Total, wantLen, want.Seq, ErrMismatch)
	}
	return nil
}

// headerSize is the size of a frame header on a raw TCP bulk stream.
const headerSize = 48

const frameMagic = 0x524d4146 // "RMAF"

// putHeader encodes h and the payload length into b[:headerSize].
func putHeader(b []byte, h Header, n int) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], frameMagic)
	le.PutUint32(b[4:], uint32(h.Kind))
	le.PutUint64(b[8:], h.Job)
	le.PutUint64(b[16:], h.Generation)
	le.PutUint64(b[24:], h.Seq)
	le.PutUint64(b[32:], h.Total)
	le.PutUint32(b[40:], h.Chunk)
	le.PutUint32(b[44:], uint32(n))
}

// parseHeader decodes b[:headerSize].
func parseHeader(b []byte) (Header, int, error) {
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != frameMagic {
		return Header{}, 0, fmt.Errorf("bad frame magic %#x: %w", m, ErrUnexpectedFrame)
	}
	h := Header{
		Kind:       Kind(le.Uint32(b[4:])),
		Job:        le.Uint64(b[8:]),
		Generation: le.Uint64(b[16:]),
		Seq:        le.Uint64(b[24:]),
		Total:      le.Uint64(b[32:]),
		Chunk:      le.Uint32(b[40:]),
	}
	return h, int(le.Uint32(b[44:])), nil
}
