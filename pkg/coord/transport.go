package coord

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's StreamLayer over TCP, optionally wrapped in TLS.
// It is the seam for mTLS: give Config.RaftTLS a config with certificates
// and client auth and every raft connection is authenticated both ways.
type streamLayer struct {
	net.Listener
	tls *tls.Config

	mu       sync.Mutex
	closed   bool
	accepted map[net.Conn]struct{} // inbound conns, closed with the layer
}

// Accept implements net.Listener, remembering the conn so Close can cut it:
// raft's per-connection readers otherwise outlive the transport.
func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.accepted[tc] = struct{}{}
	return tc, nil
}

// Close closes the listener and every accepted connection.
func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.accepted {
		_ = c.(*trackedConn).Conn.Close()
	}
	s.accepted = nil
	return err
}

type trackedConn struct {
	net.Conn
	s *streamLayer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.accepted, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

func newStreamLayer(bind string, tlsConf *tls.Config) (*streamLayer, error) {
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raft listen %s: %w", bind, err)
	}
	if tlsConf != nil {
		l = tls.NewListener(l, tlsConf)
	}
	return &streamLayer{Listener: l, tls: tlsConf, accepted: map[net.Conn]struct{}{}}, nil
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.tls != nil {
		return tls.DialWithDialer(d, "tcp", string(addr), s.tls)
	}
	return d.Dial("tcp", string(addr))
}
