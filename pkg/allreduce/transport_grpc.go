package allreduce

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// endpoint is one rank's Transport of a group served by a Server.
type endpoint struct {
	s       *Server
	id      GroupID
	job     uint64
	rank    int
	size    int
	peers   []string
	peerIDs []string // worker id by rank (with TLS)
	timeout time.Duration
	mode    Mode
	dial    []grpc.DialOption // GroupConfig.DialOptions; transport credentials are added per peer

	ctx    context.Context // the endpoint's lifetime: cancelled by Close
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	out []*outLink
	in  []*inSlot

	sameHost atomic.Int32 // connected peers that run on this host (same host id)
}

// linkWriter sends frames to one peer; linkReader receives frames from one.
type linkWriter interface {
	send(ctx context.Context, h Header, payload []byte, timeout time.Duration) error
	close()
}

type linkReader interface {
	recv(ctx context.Context, want Header, dst []byte, timeout time.Duration) error
	close()
}

type outLink struct {
	mu   sync.Mutex
	cc   *grpc.ClientConn
	w    linkWriter
	err  error  // dial failure, sticky
	kind string // "unix", "tcp" or "grpc" once connected
	// connected is kind, for readers that do not hold mu (metrics).
	connected atomic.Pointer[string]
}

type inSlot struct {
	mu    sync.Mutex
	r     linkReader
	kind  string        // how r's frames travel; set with r
	ready chan struct{} // closed once r is set
}

func newEndpoint(s *Server, id GroupID, cfg GroupConfig) *endpoint {
	ctx, cancel := context.WithCancel(context.Background())
	ep := &endpoint{
		s: s, id: id, job: JobHash(id.Job), rank: cfg.Rank, size: len(cfg.Peers),
		peers: append([]string(nil), cfg.Peers...), peerIDs: append([]string(nil), cfg.PeerIDs...),
		timeout: cfg.PeerTimeout, mode: cfg.Mode, dial: cfg.DialOptions,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	for range ep.size {
		ep.out = append(ep.out, &outLink{})
		ep.in = append(ep.in, &inSlot{ready: make(chan struct{})})
	}
	return ep
}

func (ep *endpoint) Group() GroupID { return ep.id }
func (ep *endpoint) Rank() int      { return ep.rank }
func (ep *endpoint) Size() int      { return ep.size }

// Close unregisters the group and closes all its links.
func (ep *endpoint) Close() error {
	ep.once.Do(func() {
		ep.cancel()
		close(ep.done)
		ep.s.leave(ep)
		for _, o := range ep.out {
			o.mu.Lock() // waits for a dial in progress, which ep.ctx aborts
			if o.w != nil {
				o.w.close()
			}
			if o.cc != nil {
				o.cc.Close()
			}
			o.mu.Unlock()
		}
		for _, in := range ep.in {
			in.mu.Lock()
			if in.r != nil {
				in.r.close()
			}
			in.mu.Unlock()
		}
	})
	return nil
}

func (ep *endpoint) peerErr(op string, peer int, err error) error {
	return &PeerError{Rank: peer, Addr: ep.peers[peer], Op: op, Err: err}
}

// attach installs the reader of frames from rank from (called by the server).
func (ep *endpoint) attach(from int, r linkReader) error {
	in := ep.in[from]
	in.mu.Lock()
	defer in.mu.Unlock()
	select {
	case <-ep.done:
		return fmt.Errorf("group %s/%d closed: %w", ep.id.Job, ep.id.Generation, ErrPeerClosed)
	default:
	}
	if in.r != nil {
		return fmt.Errorf("second link from rank %d to group %s/%d: %w", from, ep.id.Job, ep.id.Generation, ErrMismatch)
	}
	if tr, ok := r.(*tcpReader); ok {
		tr.spin = ep.spinOK
	}
	in.r, in.kind = r, readerKind(r)
	close(in.ready)
	return nil
}

// spinOK reports whether a receiver may poll for a small frame instead of
// parking at once: when this rank and the peers it has found on its host
// (same host id) fit on the host's cores.
func (ep *endpoint) spinOK() bool { return int(ep.sameHost.Load())+1 <= runtime.NumCPU() }

func (ep *endpoint) Recv(ctx context.Context, from int, want Header, dst []byte) error {
	in := ep.in[from]
	select {
	case <-in.ready:
	default:
		t := time.NewTimer(ep.timeout)
		defer t.Stop()
		select {
		case <-in.ready:
		case <-ep.done:
			return ep.peerErr("recv", from, ErrClosed)
		case <-ctx.Done():
			return ep.peerErr("recv", from, context.Cause(ctx))
		case <-t.C:
			return ep.peerErr("recv", from, fmt.Errorf("peer did not connect within %v: %w", ep.timeout, ErrPeerTimeout))
		}
	}
	if err := in.r.recv(ctx, want, dst, ep.timeout); err != nil {
		if ep.ctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (%v)", ErrClosed, err)
		}
		return ep.peerErr("recv", from, err)
	}
	return nil
}

func (ep *endpoint) Send(ctx context.Context, to int, h Header, payload []byte) error {
	o := ep.out[to]
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		if o.err == nil {
			o.err = ep.connect(ctx, to, o)
		}
		if o.err != nil {
			return ep.peerErr("send", to, o.err)
		}
	}
	if err := o.w.send(ctx, h, payload, ep.timeout); err != nil {
		if ep.ctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w (%v)", ErrClosed, err)
		}
		return ep.peerErr("send", to, err)
	}
	return nil
}

// connect opens the link to rank to: it asks the peer's server (over gRPC)
// whether the group exists there yet, retrying until the peer timeout, and
// then opens a bulk TCP stream or a gRPC stream.
func (ep *endpoint) connect(ctx context.Context, to int, o *outLink) error {
	select {
	case <-ep.done:
		return ErrClosed
	default:
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if ep.s.tls != nil {
		creds = ep.s.tls.DialOption(ep.expect(to))
	}
	cc, err := grpc.NewClient(ep.peers[to], append([]grpc.DialOption{creds}, ep.dial...)...)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	o.cc = cc
	client := pb.NewPeerCollectiveClient(cc)
	hello := &pb.PeerHello{Job: ep.id.Job, Generation: ep.id.Generation, From: uint32(ep.rank), To: uint32(to), WorldSize: uint32(ep.size)}

	// Both the caller's context and Close abort the dial.
	dctx, cancel := context.WithTimeoutCause(ctx, ep.timeout, fmt.Errorf("peer's group not reachable within %v: %w", ep.timeout, ErrPeerTimeout))
	defer cancel()
	stop := context.AfterFunc(ep.ctx, cancel)
	defer stop()

	backoff := time.Millisecond
	for {
		w, sameHost, err := ep.tryConnect(dctx, client, hello, to)
		if err == nil {
			o.w = w
			o.kind = linkKind(w)
			o.connected.Store(&o.kind)
			if sameHost {
				ep.sameHost.Add(1)
			}
			return nil
		}
		if !errors.Is(err, ErrUnknownGroup) && !errors.Is(err, errRetry) {
			return err
		}
		// The peer has not joined the group yet (or is still starting): retry.
		select {
		case <-dctx.Done():
			if ep.ctx.Err() != nil {
				return ErrClosed
			}
			return fmt.Errorf("%w (last: %v)", context.Cause(dctx), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

var errRetry = errors.New("retry")

// expect is who the server of rank to must be (with TLS).
func (ep *endpoint) expect(to int) tlsauth.Expect {
	return tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}, Name: ep.peerIDs[to]}
}

// bulkTLS is the TLS config of a bulk TCP stream to rank to (nil without TLS).
func (ep *endpoint) bulkTLS(to int) *tls.Config {
	if ep.s.tls == nil {
		return nil
	}
	return ep.s.tls.ClientConfig(ep.expect(to))
}

// tryConnect opens the link to peer to; sameHost says whether the peer runs
// on this host (the same host id).
func (ep *endpoint) tryConnect(ctx context.Context, client pb.PeerCollectiveClient, hello *pb.PeerHello, to int) (w linkWriter, sameHost bool, err error) {
	bulk, err := client.OpenBulk(ctx, hello, grpc.WaitForReady(true))
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("%w: %v", errRetry, err)
		}
		return nil, false, fromStatus(err)
	}
	sameHost = bulk.GetHostId() != "" && bulk.GetHostId() == ep.s.hostID
	w, err = ep.openLink(ctx, client, hello, to, bulk, sameHost)
	return w, sameHost, err
}

// openLink dials the link OpenBulk described: a Unix socket to a peer on
// this host (sameHost) that offers one, else TCP, else a gRPC stream.
func (ep *endpoint) openLink(ctx context.Context, client pb.PeerCollectiveClient, hello *pb.PeerHello, to int, bulk *pb.PeerBulkEndpoint, sameHost bool) (linkWriter, error) {
	if ep.mode != ModeGRPC && bulk.GetAddress() != "" {
		if ep.mode == ModeBulk && sameHost && bulk.GetLocalAddress() != "" {
			local := proto.CloneOf(hello)
			local.LocalToken = bulk.GetLocalToken()
			w, err := dialBulk(ctx, "unix", bulk.GetLocalAddress(), local, nil)
			if err == nil || !errors.Is(err, errRetry) {
				return w, err
			}
			// Same host id but unreachable (should not happen): TCP still works.
			ep.s.log.Warn("local bulk link failed, using TCP", "peer", to, "err", err)
		}
		return dialBulk(ctx, "tcp", bulkAddress(bulk.GetAddress(), ep.peers[to]), hello, ep.bulkTLS(to))
	}
	// gRPC stream for the lifetime of the endpoint.
	sctx, cancel := context.WithCancel(ep.ctx)
	stream, err := client.Frames(sctx, grpc.WaitForReady(true))
	if err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	return &grpcWriter{stream: stream, cancel: cancel, hello: hello, job: hello.GetJob()}, nil
}

// linkKind says how a connected link carries frames.
func linkKind(w linkWriter) string {
	if tw, ok := w.(*tcpWriter); ok {
		return tw.network
	}
	return TransportGRPC
}

// readerKind says how a link's incoming frames travel.
func readerKind(r linkReader) string {
	if tr, ok := r.(*tcpReader); ok && tr.c != nil {
		return tr.c.LocalAddr().Network() // "tcp" or "unix"
	}
	return TransportGRPC
}

// LinkKind implements linkKinder: how frames to (sending) or from peer
// travel, "" while that link is not connected.
func (ep *endpoint) LinkKind(peer int, sending bool) string {
	if peer < 0 || peer >= ep.size {
		return ""
	}
	if sending {
		if k := ep.out[peer].connected.Load(); k != nil {
			return *k
		}
		return ""
	}
	in := ep.in[peer]
	select {
	case <-in.ready:
		return in.kind
	default:
		return ""
	}
}

// bulkAddress replaces an unspecified host in addr by the host of grpcAddr.
func bulkAddress(addr, grpcAddr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if h, _, err := net.SplitHostPort(grpcAddr); err == nil {
			return net.JoinHostPort(h, port)
		}
	}
	return addr
}

// grpcWriter sends frames on a gRPC client stream; the first frame carries
// the hello that names the link.
type grpcWriter struct {
	stream pb.PeerCollective_FramesClient
	cancel context.CancelFunc
	hello  *pb.PeerHello // sent with the first frame only
	job    string
}

func (w *grpcWriter) send(ctx context.Context, h Header, payload []byte, timeout time.Duration) error {
	msg := &pb.PeerFrame{
		Hello: w.hello,
		Header: &pb.PeerFrameHeader{
			Job: w.job, Generation: h.Generation, Seq: h.Seq, Chunk: h.Chunk,
			Kind: uint32(h.Kind), Total: h.Total,
		},
		Payload: payload,
	}
	w.hello = nil
	// A stalled peer blocks Send on flow control: the timer and ctx cancel
	// the stream (which breaks the link; a failed send breaks the group anyway).
	var timedOut bool
	var mu sync.Mutex
	t := time.AfterFunc(timeout, func() { mu.Lock(); timedOut = true; mu.Unlock(); w.cancel() })
	stop := context.AfterFunc(ctx, w.cancel)
	err := w.stream.Send(msg)
	t.Stop()
	stop()
	if err == nil {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	switch {
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case timedOut:
		return fmt.Errorf("frame not accepted within %v: %w", timeout, ErrPeerTimeout)
	case errors.Is(err, io.EOF):
		// The server ended the stream: its status says why.
		if _, serr := w.stream.CloseAndRecv(); serr != nil {
			return fromStatus(serr)
		}
		return fmt.Errorf("stream ended: %w", ErrPeerClosed)
	}
	return fromStatus(err)
}

func (w *grpcWriter) close() {
	_ = w.stream.CloseSend()
	w.cancel()
}

// grpcReader hands the frames of one inbound gRPC stream (pushed by the
// server's handler) to the receiving collective.
type grpcReader struct {
	frames chan *pb.PeerFrame
	dead   chan struct{} // closed with err once the stream ended
	err    error
	once   sync.Once
}

func (r *grpcReader) fail(err error) {
	r.once.Do(func() {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("stream ended: %w", ErrPeerClosed)
		} else {
			err = fromStatus(err)
			if !errors.Is(err, ErrPeerClosed) {
				err = fmt.Errorf("%w: %v", ErrPeerClosed, err)
			}
		}
		r.err = err
		close(r.dead)
	})
}

func (r *grpcReader) close() { r.fail(fmt.Errorf("%w", ErrClosed)) }

func (r *grpcReader) recv(ctx context.Context, want Header, dst []byte, timeout time.Duration) error {
	var f *pb.PeerFrame
	select {
	case f = <-r.frames:
	default:
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case f = <-r.frames:
		case <-r.dead:
			select {
			case f = <-r.frames: // frames that arrived before the end still count
			default:
				return r.err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			return fmt.Errorf("no frame within %v: %w", timeout, ErrPeerTimeout)
		}
	}
	fh := f.GetHeader()
	got := Header{
		Job: JobHash(fh.GetJob()), Generation: fh.GetGeneration(), Seq: fh.GetSeq(),
		Chunk: fh.GetChunk(), Kind: Kind(fh.GetKind()), Total: fh.GetTotal(),
	}
	if err := check(want, got, len(dst), len(f.GetPayload())); err != nil {
		return err
	}
	copy(dst, f.GetPayload())
	return nil
}
