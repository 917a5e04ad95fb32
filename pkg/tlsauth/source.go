package tlsauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Files names the PEM files a node reads: the cluster CA, its own
// certificate and key.
type Files struct {
	CA, Cert, Key string
}

// InDir is the files of the leaf named name in a certificates directory.
func InDir(dir, name string) Files {
	return Files{CA: filepath.Join(dir, CACertFile), Cert: filepath.Join(dir, CertFile(name)), Key: filepath.Join(dir, KeyFile(name))}
}

// material is one consistent load of Files.
type material struct {
	cert  tls.Certificate
	self  Identity
	roots *x509.CertPool
	stamp string // sizes and mtimes of the files, to notice changes
}

// Source holds a node's current certificate, key and CA, reloaded from its
// Files. Every TLS config and Authorizer built on it reads the current
// material at each handshake or call.
type Source struct {
	files Files
	log   *slog.Logger
	now   func() time.Time
	cur   atomic.Pointer[material]
	mu    sync.Mutex // serialises Reload
	ver   atomic.Uint64
}

// Load reads files and returns a Source over them. It fails when they are
// missing or inconsistent (the key does not match the certificate, the
// certificate is not signed by the CA or has expired).
func Load(files Files, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{files: files, log: log, now: time.Now}
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	return s, nil
}

// Version counts the reloads that changed the material. A client compares
// it with the version its connections were made at and redials after a
// change: a connection keeps the certificate of its handshake, which a
// server checking each call against the current CA refuses once the CA
// was rotated (coord.Client.RedialOnChange).
func (s *Source) Version() uint64 { return s.ver.Load() }

// Identity is who this node's current certificate names.
func (s *Source) Identity() Identity { return s.cur.Load().self }

// NotAfter is when this node's current certificate expires.
func (s *Source) NotAfter() time.Time { return s.cur.Load().cert.Leaf.NotAfter }

// Reload rereads the files. On failure the current material stays in use
// (a rotation caught half-written is picked up on the next try).
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	old := s.cur.Swap(m)
	if old.stamp != m.stamp {
		s.ver.Add(1)
		s.log.Info("certificates reloaded", "identity", m.self.String(), "not_after", m.cert.Leaf.NotAfter.Format(time.RFC3339), "cert", s.files.Cert)
	}
	return nil
}

// Watch reloads when the files change (polled every interval) until ctx
// ends. SIGHUP handling is the binary's: it calls Reload.
func (s *Source) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := s.files.stamp(); err == nil && st != s.cur.Load().stamp {
			if err := s.Reload(); err != nil {
				s.log.Warn("certificate files changed but do not load; keeping the current ones", "err", err)
			}
		}
	}
}

func (f Files) stamp() (string, error) {
	out := ""
	for _, p := range []string{f.CA, f.Cert, f.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		out += fmt.Sprintf("%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return out, nil
}

func (s *Source) load() (*material, error) {
	stamp, err := s.files.stamp()
	if err != nil {
		return nil, fmt.Errorf("tls files: %w", err)
	}
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		return nil, fmt.Errorf("tls CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tls CA %s: no PEM certificate in it", s.files.CA)
	}
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s / key %s: %w", s.files.Cert, s.files.Key, err)
	}
	self, err := FromCertificate(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s: %w", s.files.Cert, err)
	}
	m := &material{cert: cert, self: self, roots: roots, stamp: stamp}
	if _, err := m.verify(cert.Certificate, s.now()); err != nil {
		return nil, fmt.Errorf("tls certificate %s: %w", s.files.Cert, err)
	}
	return m, nil
}

// Rejection is why a peer was refused; Reason is a short label for
// metrics (no_certificate, unknown_ca, expired, bad_certificate,
// wrong_role, wrong_identity, bad_token).
type Rejection struct {
	Reason string
	Err    error
}

func (r *Rejection) Error() string { return r.Err.Error() }
func (r *Rejection) Unwrap() error { return r.Err }

func reject(reason string, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// ReasonOf is the Rejection reason in err's chain ("other" when none).
func ReasonOf(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Reason
	}
	return "other"
}

// verify checks a peer's chain (DER, leaf first) against the CA at now
// and returns the identity it carries.
func (m *material) verify(chain [][]byte, now time.Time) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, &Rejection{Reason: "no_certificate", Err: ErrNoCertificate}
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return Identity{}, reject("bad_certificate", "peer certificate: %v", err)
		}
		certs[i] = c
	}
	return m.verifyParsed(certs, now)
}

func (m *material) verifyParsed(certs []*x509.Certificate, now time.Time) (Identity, error) {
	if len(certs) == 0 {
		return Identity{}, &Rejection{Reason: "no_certificate", Err: ErrNoCertificate}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	_, err := leaf.Verify(x509.VerifyOptions{Roots: m.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case err == nil:
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return Identity{}, reject("expired", "certificate %q expired or not yet valid (valid %s to %s, now %s)",
			leaf.Subject.CommonName, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), now.Format(time.RFC3339))
	case errors.As(err, &ua):
		return Identity{}, reject("unknown_ca", "certificate %q is not signed by this cluster's CA", leaf.Subject.CommonName)
	default:
		return Identity{}, reject("bad_certificate", "certificate %q: %v", leaf.Subject.CommonName, err)
	}
	id, err := FromCertificate(leaf)
	if err != nil {
		return Identity{}, reject("bad_certificate", "%v", err)
	}
	return id, nil
}

// Verify checks a peer's certificates (as in tls.ConnectionState's
// PeerCertificates) against the current CA and returns their identity.
func (s *Source) Verify(certs []*x509.Certificate) (Identity, error) {
	return s.cur.Load().verifyParsed(certs, s.now())
}

// VerifyState verifies the peer of a TLS connection.
func (s *Source) VerifyState(cs *tls.ConnectionState) (Identity, error) {
	if cs == nil {
		return Identity{}, &Rejection{Reason: "no_certificate", Err: errors.New("not a TLS connection: this cluster requires mutual TLS")}
	}
	return s.Verify(cs.PeerCertificates)
}

// Expect says which peers a TLS config accepts: any of Roles (none: any
// role) and, when Name is set, that name only.
type Expect struct {
	Roles []Role
	Name  string
}

// Check returns a Rejection unless id is what e expects.
func (e Expect) Check(id Identity) error {
	if len(e.Roles) > 0 {
		ok := false
		for _, r := range e.Roles {
			ok = ok || id.Role == r
		}
		if !ok {
			return reject("wrong_role", "%s is not allowed here: needs role %s", id, rolesText(e.Roles))
		}
	}
	if e.Name != "" && id.Name != e.Name {
		return reject("wrong_identity", "%s is not the expected peer %q", id, e.Name)
	}
	return nil
}

func rolesText(rs []Role) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += " or "
		}
		out += string(r)
	}
	return out
}
