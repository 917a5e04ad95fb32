package tlsauth

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// ServerConfig is the TLS config of a gRPC server whose callers are
// checked per call by an Authorizer: it presents this node's current
// certificate and asks for the caller's, but accepts the handshake without
// one, so that a refused caller gets a gRPC status that says why
// (Unauthenticated, naming the certificate's problem) instead of a broken
// connection. Never serve gRPC with it without an Authorizer.
func (s *Source) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{m.cert},
				ClientAuth:   tls.RequestClientCert,
				NextProtos:   []string{"h2"},
			}, nil
		},
	}
}

// ClientConfig is the TLS config of a client that presents this node's
// current certificate and accepts only a server whose certificate the
// current CA signed and that e expects (e.g. the coordinator role).
func (s *Source) ClientConfig(e Expect) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := s.cur.Load().cert
			return &c, nil
		},
		// The chain is verified by VerifyConnection against the current
		// CA, by identity rather than by host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := s.VerifyState(&cs)
			if err == nil {
				err = e.Check(id)
			}
			if err != nil {
				return fmt.Errorf("server: %w", err)
			}
			return nil
		},
	}
}

// MutualConfig is one TLS config for both ends of a raw connection (the
// raft transport, bulk streams): as a server it requires a client
// certificate from the current CA that e accepts and fails the handshake
// otherwise (the connection is closed before a byte of payload is read);
// as a client it presents this node's certificate and verifies the server
// the same way. onReject, when set, is told of every refused handshake.
func (s *Source) MutualConfig(e Expect, onReject func(remote string, err error)) *tls.Config {
	verify := func(cs tls.ConnectionState) error {
		id, err := s.VerifyState(&cs)
		if err == nil {
			err = e.Check(id)
		}
		return err
	}
	c := s.ClientConfig(e)
	c.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.cur.Load()
		remote := ""
		if hi.Conn != nil {
			remote = hi.Conn.RemoteAddr().String()
		}
		return &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{m.cert},
			ClientAuth:   tls.RequestClientCert, // verified below (none is a rejection), against the current CA
			VerifyConnection: func(cs tls.ConnectionState) error {
				err := verify(cs)
				if err != nil && onReject != nil {
					onReject(remote, err)
				}
				return err
			},
		}, nil
	}
	return c
}

// PeerIdentity returns the verified identity of the other end of an
// established TLS connection made with MutualConfig.
func (s *Source) PeerIdentity(c *tls.Conn) (Identity, error) {
	cs := c.ConnectionState()
	if !cs.HandshakeComplete {
		return Identity{}, errors.New("tls handshake not complete")
	}
	return s.VerifyState(&cs)
}
