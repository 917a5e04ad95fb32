package allreduce

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// InprocNetwork connects the ranks of one group inside one process, for tests.
// Each ordered pair of ranks has a buffered channel of frames.
type InprocNetwork struct {
	id      GroupID
	timeout time.Duration
	links   [][]chan inprocFrame // links[from][to]
	closed  []chan struct{}      // closed[rank] is closed when rank's endpoint closes
	once    []sync.Once
}

type inprocFrame struct {
	h    Header
	data []byte
}

// NewInprocNetwork returns a network of size ranks for group id; peerTimeout
// bounds every Send and Recv.
func NewInprocNetwork(id GroupID, size int, peerTimeout time.Duration) *InprocNetwork {
	n := &InprocNetwork{
		id:      id,
		timeout: peerTimeout,
		links:   make([][]chan inprocFrame, size),
		closed:  make([]chan struct{}, size),
		once:    make([]sync.Once, size),
	}
	for i := range size {
		n.links[i] = make([]chan inprocFrame, size)
		for j := range size {
			n.links[i][j] = make(chan inprocFrame, 64)
		}
		n.closed[i] = make(chan struct{})
	}
	return n
}

// Endpoint returns rank's transport.
func (n *InprocNetwork) Endpoint(rank int) Transport { return &inprocEndpoint{n: n, rank: rank} }

// Inject delivers a frame to rank to as if rank from had sent it (for fault tests).
func (n *InprocNetwork) Inject(from, to int, h Header, payload []byte) {
	n.links[from][to] <- inprocFrame{h: h, data: append([]byte(nil), payload...)}
}

type inprocEndpoint struct {
	n    *InprocNetwork
	rank int
}

func (e *inprocEndpoint) Group() GroupID { return e.n.id }

// LinkKind implements linkKinder: every link is in-process.
func (e *inprocEndpoint) LinkKind(int, bool) string { return TransportInproc }
func (e *inprocEndpoint) Rank() int                 { return e.rank }
func (e *inprocEndpoint) Size() int                 { return len(e.n.closed) }

func (e *inprocEndpoint) Close() error {
	e.n.once[e.rank].Do(func() { close(e.n.closed[e.rank]) })
	return nil
}

func (e *inprocEndpoint) peerErr(op string, peer int, err error) error {
	return &PeerError{Rank: peer, Addr: "inproc", Op: op, Err: err}
}

func (e *inprocEndpoint) Send(ctx context.Context, to int, h Header, payload []byte) error {
	f := inprocFrame{h: h, data: append([]byte(nil), payload...)}
	t := time.NewTimer(e.n.timeout)
	defer t.Stop()
	select {
	case e.n.links[e.rank][to] <- f:
		return nil
	case <-e.n.closed[e.rank]:
		return e.peerErr("send", to, ErrClosed)
	case <-e.n.closed[to]:
		return e.peerErr("send", to, ErrPeerClosed)
	case <-ctx.Done():
		return e.peerErr("send", to, ctx.Err())
	case <-t.C:
		return e.peerErr("send", to, fmt.Errorf("not accepted within %v: %w", e.n.timeout, ErrPeerTimeout))
	}
}

func (e *inprocEndpoint) Recv(ctx context.Context, from int, want Header, dst []byte) error {
	ch := e.n.links[from][e.rank]
	var f inprocFrame
	select {
	case f = <-ch:
	default:
		t := time.NewTimer(e.n.timeout)
		defer t.Stop()
		select {
		case f = <-ch:
		case <-e.n.closed[e.rank]:
			return e.peerErr("recv", from, ErrClosed)
		case <-e.n.closed[from]:
			select {
			case f = <-ch: // frames sent before the peer closed still count
			default:
				return e.peerErr("recv", from, ErrPeerClosed)
			}
		case <-ctx.Done():
			return e.peerErr("recv", from, ctx.Err())
		case <-t.C:
			return e.peerErr("recv", from, fmt.Errorf("no frame within %v: %w", e.n.timeout, ErrPeerTimeout))
		}
	}
	if err := check(want, f.h, len(dst), len(f.data)); err != nil {
		return e.peerErr("recv", from, err)
	}
	copy(dst, f.data)
	return nil
}
