package coord

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// mutualTLS returns a config that presents a self-signed certificate for
// 127.0.0.1 and requires the peer to present one signed by it.
func mutualTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ringmaster-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
}

// TestRaftOverMutualTLS: the StreamLayer seam carries raft over mTLS, and a
// plain-TCP node cannot join the conversation.
func TestRaftOverMutualTLS(t *testing.T) {
	conf := mutualTLS(t)
	nodes := newTestNodes(t, 3)
	for _, n := range nodes {
		n.raftTLS = conf
		n.start(t, peersOf(nodes), "")
	}
	cl := NewClient(grpcAddrs(nodes))
	defer cl.Close()
	if _, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(specYAML)); err != nil {
		t.Fatalf("write over mTLS raft: %v", err)
	}
	// A plaintext dial to a raft port gets no raft answer.
	c, err := net.DialTimeout("tcp", nodes[0].raftAddr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{0, 0x80}); err != nil {
		return // refused outright: fine
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if n > 0 && buf[0] != 0x15 { // 0x15: a TLS alert record
		t.Fatalf("plaintext peer got a non-TLS answer % x", buf[:n])
	}
}
