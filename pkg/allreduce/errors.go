package allreduce

import (
	"errors"
	"fmt"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrStaleGeneration: a frame or link belongs to an older (or otherwise
	// different) generation of the job than the receiving group.
	ErrStaleGeneration = errors.New("allreduce: stale generation")
	// ErrUnknownGroup: no group with that (job, generation) is registered on the
	// receiving server (yet).
	ErrUnknownGroup = errors.New("allreduce: unknown group")
	// ErrPeerTimeout: a peer sent or accepted nothing within the peer timeout.
	ErrPeerTimeout = errors.New("allreduce: peer timeout")
	// ErrPeerClosed: a peer's link closed (the peer died, or aborted its group).
	ErrPeerClosed = errors.New("allreduce: peer closed")
	// ErrUnexpectedFrame: a frame's sequence number or chunk index is not the
	// one the receiver expects.
	ErrUnexpectedFrame = errors.New("allreduce: unexpected frame")
	// ErrMismatch: ranks called different collectives or with different sizes.
	ErrMismatch = errors.New("allreduce: mismatched collective across ranks")
	// ErrUnauthorized: with mutual TLS on, a link came from (or led to) a
	// worker other than the one the generation puts at that rank, or
	// without the credentials the link needs.
	ErrUnauthorized = errors.New("allreduce: peer not authorized for this rank")
	// ErrClosed: the communicator was closed.
	ErrClosed = errors.New("allreduce: communicator closed")
)

// PeerError is a failure attributed to one peer of the group.
type PeerError struct {
	Rank int    // the peer's rank
	Addr string // the peer's address, if known
	Op   string // "send" or "recv"
	Err  error
}

func (e *PeerError) Error() string {
	if e.Addr != "" {
		return fmt.Sprintf("allreduce: %s peer rank %d (%s): %v", e.Op, e.Rank, e.Addr, e.Err)
	}
	return fmt.Sprintf("allreduce: %s peer rank %d: %v", e.Op, e.Rank, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }
