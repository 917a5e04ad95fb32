package allreduce

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Raw bulk streams (TCP, or a Unix socket between processes on the same host).
// After OpenBulk (gRPC) confirmed the group, the sender
// dials the peer's bulk listener and writes a hello (4-byte big-endian length,
// then a marshalled PeerHello); the server answers one status byte. Then the
// connection carries frames one way: a 48-byte header (see putHeader) followed
// by the payload, written with one writev from the caller's buffer and read
// straight into the receiver's buffer.

const (
	bulkOK byte = iota
	bulkUnknown
	bulkStale
	bulkRejected
	bulkUnauthorized
)

const (
	bulkSockBuf   = 1 << 20  // SO_SNDBUF / SO_RCVBUF: less in flight stays in cache (4 MiB measured slower)
	bulkReadBuf   = 64 << 10 // bufio in front of the socket; larger reads bypass it
	maxHelloBytes = 4 << 10

	// A receiver expecting a frame of at most spinMaxBytes (the small
	// all-reduce path, barriers) polls for up to spinFor before parking.
	spinMaxBytes = 64 << 10
	spinFor      = 100 * time.Microsecond
)

// aLongTimeAgo is a deadline in the past, used to abort blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// dialBulk opens a bulk stream to addr on network ("tcp" or "unix") and
// names the link with hello. With tlsCfg the stream is TLS, and the
// handshake checks that the server is the expected peer before the hello.
func dialBulk(ctx context.Context, network, addr string, hello *pb.PeerHello, tlsCfg *tls.Config) (linkWriter, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: bulk dial %s: %v", errRetry, addr, err)
	}
	tuneConn(raw)
	c := raw
	var under *recordBuffer
	if tlsCfg != nil {
		under = &recordBuffer{Conn: raw, r: bufio.NewReaderSize(raw, tlsBuf), w: bufio.NewWriterSize(raw, tlsBuf)}
		tc := tls.Client(under, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: bulk tls handshake with %s: %v", errRetry, addr, err)
			}
			return nil, fmt.Errorf("bulk tls handshake with %s: %v: %w", addr, err, ErrUnauthorized)
		}
		c = tc
	}
	b, err := proto.Marshal(hello)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("marshal hello: %w", err)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	msg = append(msg, b...)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(aLongTimeAgo) })
	defer stop()
	var st [1]byte
	if _, err = c.Write(msg); err == nil {
		_, err = io.ReadFull(c, st[:])
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: bulk handshake with %s: %v", errRetry, addr, err)
	}
	c.SetDeadline(time.Time{})
	switch st[0] {
	case bulkOK:
		w := &tcpWriter{c: c, network: network}
		if under != nil {
			under.buffering = true // the handshake is over: coalesce records from now on
			w.flush = under.w.Flush
		}
		return w, nil
	case bulkUnknown:
		c.Close()
		return nil, fmt.Errorf("bulk %s: %w", addr, ErrUnknownGroup)
	case bulkStale:
		c.Close()
		return nil, fmt.Errorf("bulk %s: %w", addr, ErrStaleGeneration)
	case bulkUnauthorized:
		c.Close()
		return nil, fmt.Errorf("bulk %s refused the link's credentials: %w", addr, ErrUnauthorized)
	}
	c.Close()
	return nil, fmt.Errorf("bulk %s rejected the link: %w", addr, ErrMismatch)
}

// bulkConn is what a bulk stream needs of its connection (*net.TCPConn or
// *net.UnixConn; both write net.Buffers with one writev).
type bulkConn interface {
	net.Conn
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

func tuneConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if bc, ok := c.(bulkConn); ok {
		bc.SetReadBuffer(bulkSockBuf)
		bc.SetWriteBuffer(bulkSockBuf)
	}
}

// acceptLoop accepts bulk connections on ln (the Unix-socket listener when
// local) until it closes.
func (s *Server) acceptLoop(ln net.Listener, local bool) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("bulk accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.pending[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handshake(c, local)
	}
}

// handshake reads a bulk connection's hello and attaches it to its group.
// With TLS, a TCP stream must complete a mutual TLS handshake with a worker
// certificate first (no byte of the hello is read before), and a Unix-socket
// stream must come from this process's user and present the token OpenBulk
// gave its sender.
func (s *Server) handshake(raw net.Conn, local bool) {
	defer s.wg.Done()
	keep := false
	c := raw
	defer func() {
		s.mu.Lock()
		delete(s.pending, raw)
		s.mu.Unlock()
		if !keep {
			c.Close()
		}
	}()
	tuneConn(raw)
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	remote := raw.RemoteAddr().String()
	caller := ""
	if s.tls != nil && !local {
		// Reads only: the receiving end writes nothing but the status byte.
		tc := tls.Server(&recordBuffer{Conn: raw, r: bufio.NewReaderSize(raw, tlsBuf)}, s.tls.MutualConfig(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}}, func(remote string, err error) {
			s.rej.Record("bulk", remote, tlsauth.Identity{}, "bulk handshake", err)
		}))
		c = tc
		if err := tc.Handshake(); err != nil {
			return // counted and logged by the config's onReject (or a plain I/O failure)
		}
		id, err := s.tls.PeerIdentity(tc)
		if err != nil {
			return
		}
		caller = id.Name
	}
	if s.tls != nil && local {
		if err := samePeerUser(raw); err != nil {
			s.rej.Record("bulk", "unix", tlsauth.Identity{}, "bulk handshake", err)
			return
		}
	}
	var lb [4]byte
	if _, err := io.ReadFull(c, lb[:]); err != nil {
		return
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n > maxHelloBytes {
		return
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		return
	}
	var hello pb.PeerHello
	if err := proto.Unmarshal(b, &hello); err != nil {
		return
	}
	var err error
	if s.tls != nil && local {
		caller, err = s.takeLocalGrant(&hello)
	}
	var ep *endpoint
	if err == nil {
		ep, err = s.route(&hello, caller)
	}
	if err == nil {
		r := &tcpReader{c: c, br: bufio.NewReaderSize(c, bulkReadBuf)}
		err = ep.attach(int(hello.GetFrom()), r)
	}
	st := bulkOK
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownGroup):
		st = bulkUnknown
	case errors.Is(err, ErrStaleGeneration):
		st = bulkStale
	case errors.Is(err, ErrUnauthorized):
		st = bulkUnauthorized
		s.refused("bulk", remote, caller, err)
	default:
		st = bulkRejected
	}
	if _, werr := c.Write([]byte{st}); werr != nil && err == nil {
		// The reader is attached; the sender will fail and the receiver sees EOF.
		s.log.Warn("bulk handshake reply", "err", werr)
	}
	if err != nil {
		s.log.Info("bulk link rejected", "job", hello.GetJob(), "generation", hello.GetGeneration(), "from", hello.GetFrom(), "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	keep = true // owned by the group's endpoint now
}

// tcpWriter writes frames to a bulk connection (raw: one writev per frame;
// TLS: records coalesced in a recordBuffer, flushed once per frame).
type tcpWriter struct {
	c       net.Conn
	network string       // "tcp" or "unix"
	flush   func() error // TLS: writes out the frame's buffered records
	hdr     [headerSize]byte
}

// tlsBuf is the buffer between a TLS bulk stream and its socket.
const tlsBuf = 1 << 20

// recordBuffer sits between a TLS bulk stream and its socket. TLS reads and
// writes one record (≤ 16 KiB) at a time; straight on the socket that is a
// syscall per record, which took half the CPU time of a 64 MiB all-reduce.
// Reads go through r; once buffering is set (after the handshake, whose
// messages must not wait) writes collect in w until the frame's flush.
type recordBuffer struct {
	net.Conn
	r         *bufio.Reader
	w         *bufio.Writer // nil: writes go straight to the socket
	buffering bool
}

func (b *recordBuffer) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *recordBuffer) Write(p []byte) (int, error) {
	if b.w == nil || !b.buffering {
		return b.Conn.Write(p)
	}
	return b.w.Write(p)
}

func (w *tcpWriter) send(ctx context.Context, h Header, payload []byte, timeout time.Duration) error {
	w.c.SetWriteDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { w.c.SetWriteDeadline(aLongTimeAgo) })
	putHeader(w.hdr[:], h, len(payload))
	bufs := net.Buffers{w.hdr[:], payload}
	_, err := bufs.WriteTo(w.c)
	if err == nil && w.flush != nil {
		err = w.flush()
	}
	if !stop() || err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return ioError(err, "frame not accepted within %v", timeout)
}

func (w *tcpWriter) close() { w.c.Close() }

// tcpReader reads frames from a bulk connection.
type tcpReader struct {
	spin func() bool // whether to poll before parking (set by attach)
	c    net.Conn
	br   *bufio.Reader
	hdr  [headerSize]byte
}

func (r *tcpReader) recv(ctx context.Context, want Header, dst []byte, timeout time.Duration) error {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { r.c.SetReadDeadline(aLongTimeAgo) })
	err := r.read(want, dst, timeout)
	if !stop() || err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func (r *tcpReader) read(want Header, dst []byte, timeout time.Duration) error {
	if len(dst) <= spinMaxBytes && r.br.Buffered() == 0 && r.spin != nil && r.spin() {
		spinUntilReadable(r.c, spinFor)
	}
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return ioError(err, "no frame within %v", timeout)
	}
	got, n, err := parseHeader(r.hdr[:])
	if err != nil {
		return err
	}
	if err := check(want, got, len(dst), n); err != nil {
		return err
	}
	if _, err := io.ReadFull(r.br, dst); err != nil {
		return ioError(err, "frame payload stalled for %v", timeout)
	}
	return nil
}

func (r *tcpReader) close() { r.c.Close() }

// ioError classifies a bulk connection error.
func ioError(err error, timeoutMsg string, d time.Duration) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		if d > 0 {
			return fmt.Errorf(timeoutMsg+": %w", d, ErrPeerTimeout)
		}
		return fmt.Errorf("%w: %v", ErrPeerTimeout, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("%w: %v", ErrPeerClosed, err)
	case errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return fmt.Errorf("%w: %v", ErrPeerClosed, err)
}
