package tlsauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Lifetimes of what Init and Issue make unless told otherwise.
const (
	DefaultCALifetime   = 10 * 365 * 24 * time.Hour
	DefaultLeafLifetime = 365 * 24 * time.Hour
	// backdate covers clocks a little behind the issuer's.
	backdate = 5 * time.Minute
)

// File names in a certificates directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key" // only where certificates are issued; never handed to nodes
)

// CertFile and KeyFile are the file names of a leaf named name in a
// certificates directory (name.crt, name.key).
func CertFile(name string) string { return name + ".crt" }
func KeyFile(name string) string  { return name + ".key" }

// CA is a certificate authority that can issue leaves.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // Cert, PEM-encoded
}

// NewCA makes a self-signed CA (ECDSA P-256) valid from now for lifetime.
func NewCA(commonName string, lifetime time.Duration, now time.Time) (*CA, error) {
	if lifetime <= 0 {
		lifetime = DefaultCALifetime
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"ringmaster"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// Leaf is an issued certificate and its key, PEM-encoded.
type Leaf struct {
	CertPEM, KeyPEM []byte
	Cert            *x509.Certificate
}

// IssueOptions describe a leaf certificate.
type IssueOptions struct {
	Identity Identity
	// Hosts are extra DNS names or IP addresses put in the certificate, for
	// tools that verify by host name (a browser on the dashboard, curl).
	// ringmaster's own peers verify by Identity.
	Hosts    []string
	Lifetime time.Duration // 0: DefaultLeafLifetime
	Now      time.Time     // zero: time.Now()
}

// Issue signs a leaf for o.Identity, usable as both TLS server and client.
func (ca *CA) Issue(o IssueOptions) (*Leaf, error) {
	if err := o.Identity.Validate(); err != nil {
		return nil, err
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLeafLifetime
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := o.Now.Add(o.Lifetime)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter // a leaf never outlives its CA
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{CommonName: o.Identity.Name, Organization: []string{"ringmaster"},
			OrganizationalUnit: []string{string(o.Identity.Role)}},
		NotBefore:   o.Now.Add(-backdate),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{o.Identity.URI()},
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", o.Identity, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", kder), Cert: cert}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return s, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// InitDir makes a new CA in dir (ca.crt, ca.key). It refuses to overwrite
// an existing CA unless force: every certificate it signed would stop
// working.
func InitDir(dir string, lifetime time.Duration, force bool) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil && !force {
		return nil, fmt.Errorf("%s already holds a CA (%s); replacing it revokes every certificate it signed: pass --force to do that", dir, CAKeyFile)
	}
	ca, err := NewCA("ringmaster cluster CA", lifetime, time.Now())
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, CAKeyFile), pemBlock("PRIVATE KEY", kder), 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, CACertFile), ca.PEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadCA reads the CA in dir (ca.crt, ca.key).
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w (run `ringctl certs init` first)", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, fmt.Errorf("load CA in %s: not PEM", dir)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, errors.New("load CA: ca.crt is not a CA or ca.key cannot sign")
	}
	return &CA{Cert: cert, Key: signer, PEM: certPEM}, nil
}

// IssueToDir issues a leaf for o.Identity and writes it to dir as
// <file>.crt and <file>.key (file defaults to the identity's name), next to
// a copy of ca.crt so the directory is all a node needs.
func (ca *CA) IssueToDir(dir, file string, o IssueOptions) (*Leaf, error) {
	if file == "" {
		file = o.Identity.Name
	}
	leaf, err := ca.Issue(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Key first: a reloader that sees the new certificate finds its key.
	if err := writeFileAtomic(filepath.Join(dir, KeyFile(file)), leaf.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(dir, CertFile(file)), leaf.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err != nil {
		if err := writeFileAtomic(filepath.Join(dir, CACertFile), ca.PEM, 0o644); err != nil {
			return nil, err
		}
	}
	return leaf, nil
}

// writeFileAtomic writes through a temporary file and a rename, so a
// reader never sees half a file.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
