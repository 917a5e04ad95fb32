package allreduce

import "context"

// GroupID names a group: one generation of one job.
type GroupID struct {
	Job        string
	Generation uint64
}

// Transport moves frames between the ranks of one group. Frames between an
// ordered pair of ranks arrive in the order they were sent. Send and Recv
// honour ctx and fail with a *PeerError wrapping ErrPeerTimeout when the peer
// makes no progress within the transport's peer timeout. Close unblocks every
// pending Send and Recv; a closed transport's peers see ErrPeerClosed.
//
// Send to a given peer is called by one goroutine at a time, and so is Recv
// from a given peer.
type Transport interface {
	Group() GroupID
	Rank() int
	Size() int
	// Send transmits one frame to rank to; payload may be reused on return.
	Send(ctx context.Context, to int, h Header, payload []byte) error
	// Recv receives the next frame from rank from into dst. The frame must
	// match want (and len(dst)), otherwise Recv fails (see check).
	Recv(ctx context.Context, from int, want Header, dst []byte) error
	Close() error
}
