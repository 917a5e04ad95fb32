package tlsauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Role is what a certificate's holder may do in the cluster.
type Role string

// The roles a certificate can carry.
const (
	RoleCoordinator Role = "coordinator" // a member of the raft group
	RoleWorker      Role = "worker"      // a training process; its name is its worker id
	RoleOperator    Role = "operator"    // a person or tool running ringctl
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleCoordinator, RoleWorker, RoleOperator:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want coordinator, worker or operator", s)
}

// Identity is who a verified certificate names.
type Identity struct {
	Role Role
	Name string
}

func (id Identity) String() string {
	if id.Role == "" {
		return "anonymous"
	}
	return string(id.Role) + "/" + id.Name
}

const uriScheme = "ringmaster"

// URI is the identity's URI SAN, ringmaster://<role>/<name>.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: uriScheme, Host: string(id.Role), Path: "/" + id.Name}
}

// Validate checks that the identity can be put in a certificate.
func (id Identity) Validate() error {
	if _, err := ParseRole(string(id.Role)); err != nil {
		return err
	}
	if id.Name == "" || strings.ContainsAny(id.Name, "/ \t\n") {
		return fmt.Errorf("name %q: want a non-empty name without '/' or spaces", id.Name)
	}
	return nil
}

// FromCertificate reads the identity a leaf certificate carries (its one
// ringmaster:// URI SAN). It does not verify the certificate.
func FromCertificate(c *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range c.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		role, err := ParseRole(u.Host)
		if err != nil {
			return Identity{}, fmt.Errorf("certificate %q: %w", c.Subject.CommonName, err)
		}
		found = append(found, Identity{Role: role, Name: strings.TrimPrefix(u.Path, "/")})
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("certificate %q: want exactly one ringmaster:// URI SAN, found %d", c.Subject.CommonName, len(found))
	}
	if err := found[0].Validate(); err != nil {
		return Identity{}, fmt.Errorf("certificate %q: %w", c.Subject.CommonName, err)
	}
	return found[0], nil
}

// ErrNoCertificate is returned when a peer presented no certificate.
var ErrNoCertificate = errors.New("no client certificate: this cluster requires one signed by its CA (or --insecure on every binary)")

// tlsState returns the TLS state of a gRPC call's connection, if any.
func tlsState(ctx context.Context) (*tls.ConnectionState, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, false
	}
	return &ti.State, true
}

// PeerAddr is the remote address of a gRPC call ("" when unknown).
func PeerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
