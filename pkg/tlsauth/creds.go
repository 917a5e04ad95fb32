package tlsauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

type dtoMetric struct{ dto.Metric }

func credentialsTLS(c *tls.Config) credentials.TransportCredentials { return credentials.NewTLS(c) }

// DialOption is the gRPC dial option of a client that presents this
// node's certificate and accepts only servers e expects.
func (s *Source) DialOption(e Expect) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(s.ClientConfig(e)))
}

// TokenCredentials sends a bearer token with every call (for an operator
// without a certificate of the operator role). It requires transport
// security: the token never travels in plaintext.
type TokenCredentials []byte

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t TokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (t TokenCredentials) RequireTransportSecurity() bool { return true }

// AnonymousDialOption dials without a client certificate (a reader, or an
// operator with a bearer token), accepting only servers whose certificate
// the CA in caFile signed and that e expects.
func AnonymousDialOption(caFile string, e Expect) (grpc.DialOption, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls CA %s: no PEM certificate in it", caFile)
	}
	m := &material{roots: roots}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below, by identity
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := m.verifyParsed(cs.PeerCertificates, time.Now())
			if err == nil {
				err = e.Check(id)
			}
			if err != nil {
				return fmt.Errorf("server: %w", err)
			}
			return nil
		},
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(c)), nil
}
