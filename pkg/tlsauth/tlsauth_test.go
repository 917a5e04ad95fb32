package tlsauth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// pki is a CA directory with leaves issued into it.
type pki struct {
	dir string
	ca  *tlsauth.CA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsauth.InitDir(dir, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{dir: dir, ca: ca}
}

func (p *pki) issue(t testing.TB, role tlsauth.Role, name string, o tlsauth.IssueOptions) *tlsauth.Leaf {
	t.Helper()
	o.Identity = tlsauth.Identity{Role: role, Name: name}
	l, err := p.ca.IssueToDir(p.dir, "", o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (p *pki) source(t testing.TB, role tlsauth.Role, name string) *tlsauth.Source {
	t.Helper()
	p.issue(t, role, name, tlsauth.IssueOptions{})
	s, err := tlsauth.Load(tlsauth.InDir(p.dir, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyPair(t testing.TB, l *tlsauth.Leaf) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIssueCarriesIdentityAndLifetimes(t *testing.T) {
	p := newPKI(t)
	l := p.issue(t, tlsauth.RoleWorker, "w-7", tlsauth.IssueOptions{Hosts: []string{"127.0.0.1", "worker-7"}})
	id, err := tlsauth.FromCertificate(l.Cert)
	if err != nil || id != (tlsauth.Identity{Role: tlsauth.RoleWorker, Name: "w-7"}) {
		t.Fatalf("identity %v, %v", id, err)
	}
	if got := l.Cert.NotAfter.Sub(l.Cert.NotBefore); got > tlsauth.DefaultLeafLifetime+time.Hour {
		t.Errorf("leaf lifetime %v, want ≤ 1 year", got)
	}
	if got := p.ca.Cert.NotAfter.Sub(p.ca.Cert.NotBefore); got < 9*365*24*time.Hour {
		t.Errorf("CA lifetime %v, want ~10 years", got)
	}
	if len(l.Cert.IPAddresses) != 1 || len(l.Cert.DNSNames) != 1 {
		t.Errorf("hosts: %v %v", l.Cert.IPAddresses, l.Cert.DNSNames)
	}
	if _, err := tlsauth.InitDir(p.dir, 0, false); err == nil {
		t.Error("InitDir over an existing CA succeeded without force")
	}
	if _, err := p.ca.Issue(tlsauth.IssueOptions{Identity: tlsauth.Identity{Role: "admin", Name: "x"}}); err == nil {
		t.Error("issued a certificate with an unknown role")
	}
	ca2, err := tlsauth.LoadCA(p.dir)
	if err != nil || !ca2.Cert.Equal(p.ca.Cert) {
		t.Fatalf("LoadCA: %v", err)
	}
}

func TestLoadRefusesInconsistentFiles(t *testing.T) {
	p := newPKI(t)
	p.issue(t, tlsauth.RoleWorker, "old", tlsauth.IssueOptions{Now: time.Now().Add(-48 * time.Hour), Lifetime: time.Hour})
	if _, err := tlsauth.Load(tlsauth.InDir(p.dir, "old"), nil); tlsauth.ReasonOf(err) != "expired" {
		t.Errorf("expired own certificate: %v", err)
	}
	other := newPKI(t)
	other.issue(t, tlsauth.RoleWorker, "w", tlsauth.IssueOptions{})
	f := tlsauth.InDir(other.dir, "w")
	f.CA = filepath.Join(p.dir, tlsauth.CACertFile)
	if _, err := tlsauth.Load(f, nil); tlsauth.ReasonOf(err) != "unknown_ca" {
		t.Errorf("certificate of another CA: %v", err)
	}
}

// handshake runs a TLS server with cfg on loopback and dials it with cli;
// it returns the client's error and what the server saw.
func handshake(t *testing.T, srv, cli *tls.Config) (serverGot []byte, clientErr error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(io.LimitReader(c, 5))
		got <- b
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err == nil {
		_, err = c.Write([]byte("hello"))
		if err == nil {
			// TLS 1.3: a refused client certificate shows up on the first read.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			if errors.Is(err, io.EOF) {
				err = nil // the server closed after reading: accepted
			}
		}
		c.Close()
	}
	return <-got, err
}

func TestMutualConfigRejectsBadPeersBeforeReading(t *testing.T) {
	p := newPKI(t)
	srvSrc := p.source(t, tlsauth.RoleCoordinator, "c1")
	var rejected []string
	srv := srvSrc.MutualConfig(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}, func(_ string, err error) {
		rejected = append(rejected, tlsauth.ReasonOf(err))
	})
	other := newPKI(t)
	clientWith := func(l *tlsauth.Leaf) *tls.Config {
		c := p.source(t, tlsauth.RoleCoordinator, "probe").ClientConfig(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}})
		if l != nil {
			kp := keyPair(t, l)
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
		} else {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
		}
		return c
	}
	cases := []struct {
		name   string
		leaf   *tlsauth.Leaf
		reason string // "" accepted
	}{
		{"coordinator", p.issue(t, tlsauth.RoleCoordinator, "c2", tlsauth.IssueOptions{}), ""},
		{"no certificate", nil, "no_certificate"},
		{"another CA", other.issue(t, tlsauth.RoleCoordinator, "c2", tlsauth.IssueOptions{}), "unknown_ca"},
		{"expired", p.issue(t, tlsauth.RoleCoordinator, "c3", tlsauth.IssueOptions{Now: time.Now().Add(-3 * time.Hour), Lifetime: time.Hour}), "expired"},
		{"worker role", p.issue(t, tlsauth.RoleWorker, "w1", tlsauth.IssueOptions{}), "wrong_role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rejected = nil
			got, err := handshake(t, srv, clientWith(tc.leaf))
			if tc.reason == "" {
				if err != nil || string(got) != "hello" {
					t.Fatalf("accepted peer: err %v, server read %q", err, got)
				}
				return
			}
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if len(got) != 0 {
				t.Fatalf("server read %q from a refused peer", got)
			}
			if len(rejected) != 1 || rejected[0] != tc.reason {
				t.Fatalf("rejections %v, want [%s]", rejected, tc.reason)
			}
		})
	}
}

func TestClientRefusesServerOfWrongRoleOrName(t *testing.T) {
	p := newPKI(t)
	srv := p.source(t, tlsauth.RoleWorker, "w1").MutualConfig(tlsauth.Expect{}, nil)
	cli := p.source(t, tlsauth.RoleWorker, "w2")
	if _, err := handshake(t, srv, cli.ClientConfig(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}})); err == nil {
		t.Error("client accepted a worker posing as coordinator")
	}
	if _, err := handshake(t, srv, cli.ClientConfig(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}, Name: "w9"})); err == nil {
		t.Error("client accepted worker w1 where it expected w9")
	}
	if _, err := handshake(t, srv, cli.ClientConfig(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}, Name: "w1"})); err != nil {
		t.Errorf("expected peer refused: %v", err)
	}
}

func TestReloadRotatesCA(t *testing.T) {
	p := newPKI(t)
	srvSrc := p.source(t, tlsauth.RoleCoordinator, "c1")
	cliSrc := p.source(t, tlsauth.RoleCoordinator, "c2")
	e := tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}
	srv := srvSrc.MutualConfig(e, nil)
	if _, err := handshake(t, srv, cliSrc.ClientConfig(e)); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	oldCert := cliSrc.ClientConfig(e)
	// Rotate: a new CA in the same directory, new leaves for both.
	ca2, err := tlsauth.InitDir(p.dir, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"c1", "c2"} {
		if _, err := ca2.IssueToDir(p.dir, "", tlsauth.IssueOptions{Identity: tlsauth.Identity{Role: tlsauth.RoleCoordinator, Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srvSrc.Reload(); err != nil {
		t.Fatal(err)
	}
	// The client has not reloaded: it still holds the old CA's certificate
	// and trusts only the old CA.
	if _, err := handshake(t, srv, oldCert); err == nil {
		t.Fatal("certificate of the replaced CA still accepted after reload")
	}
	if err := cliSrc.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, srv, cliSrc.ClientConfig(e)); err != nil {
		t.Fatalf("after both reloaded: %v", err)
	}
}

func TestWatchReloadsChangedFiles(t *testing.T) {
	p := newPKI(t)
	src := p.source(t, tlsauth.RoleWorker, "w1")
	before := src.NotAfter()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Watch(ctx, 20*time.Millisecond)
	p.issue(t, tlsauth.RoleWorker, "w1", tlsauth.IssueOptions{Lifetime: 2 * time.Hour})
	deadline := time.Now().Add(10 * time.Second)
	for src.NotAfter().Equal(before) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not pick up the reissued certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A broken rewrite keeps the current material.
	if err := os.WriteFile(filepath.Join(p.dir, "w1.crt"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of a garbage certificate succeeded")
	}
	if src.Identity().Name != "w1" {
		t.Fatal("current identity lost after a failed reload")
	}
}

// coordStub answers the three kinds of rule the coordinator uses.
type coordStub struct {
	pb.UnimplementedCoordinatorServer
	calls int
}

func (s *coordStub) RegisterWorker(ctx context.Context, req *pb.RegisterWorkerRequest) (*pb.RegisterWorkerResponse, error) {
	s.calls++
	return &pb.RegisterWorkerResponse{Worker: &pb.Worker{Id: tlsauth.Caller(ctx).Name}}, nil
}
func (s *coordStub) CancelJob(context.Context, *pb.CancelJobRequest) (*pb.CancelJobResponse, error) {
	s.calls++
	return &pb.CancelJobResponse{}, nil
}
func (s *coordStub) ListJobs(context.Context, *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	s.calls++
	return &pb.ListJobsResponse{}, nil
}

func TestAuthorizerRules(t *testing.T) {
	p := newPKI(t)
	srvSrc := p.source(t, tlsauth.RoleCoordinator, "c1")
	reg := prometheus.NewRegistry()
	rej := tlsauth.NewRejections(reg, nil)
	token := []byte("0123456789abcdef-token")
	a := &tlsauth.Authorizer{Source: srvSrc, Component: "coordinator", OpenReads: true, Token: token, Rejections: rej,
		Policy: tlsauth.Policy{
			pb.Coordinator_RegisterWorker_FullMethodName: {Roles: []tlsauth.Role{tlsauth.RoleWorker}, Self: true},
			pb.Coordinator_CancelJob_FullMethodName:      {Roles: []tlsauth.Role{tlsauth.RoleOperator}, Token: true},
			pb.Coordinator_ListJobs_FullMethodName:       {Read: true},
		}}
	stub := &coordStub{}
	gs := grpc.NewServer(a.ServerOptions()...)
	pb.RegisterCoordinatorServer(gs, stub)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	defer gs.Stop()

	e := tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}
	dial := func(opt grpc.DialOption) pb.CoordinatorClient {
		cc, err := grpc.NewClient(ln.Addr().String(), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return pb.NewCoordinatorClient(cc)
	}
	anon, err := tlsauth.AnonymousDialOption(filepath.Join(p.dir, tlsauth.CACertFile), e)
	if err != nil {
		t.Fatal(err)
	}
	other := newPKI(t)
	otherCA := tlsauth.Expect{} // the impostor trusts anything: it wants to reach the server
	impostor := other.source(t, tlsauth.RoleOperator, "mallory").ClientConfig(otherCA)
	impostor.VerifyConnection = nil
	w1 := dial(p.source(t, tlsauth.RoleWorker, "w1").DialOption(e))
	op := dial(p.source(t, tlsauth.RoleOperator, "alice").DialOption(e))
	none := dial(anon)
	forged := dial(grpc.WithTransportCredentials(credentials.NewTLS(impostor)))
	bg := context.Background()
	withToken := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(bg, "authorization", "Bearer "+tok)
	}

	type call func(context.Context, pb.CoordinatorClient) error
	register := func(id string) call {
		return func(ctx context.Context, c pb.CoordinatorClient) error {
			_, err := c.RegisterWorker(ctx, &pb.RegisterWorkerRequest{WorkerId: id})
			return err
		}
	}
	cancelJob := func(ctx context.Context, c pb.CoordinatorClient) error {
		_, err := c.CancelJob(ctx, &pb.CancelJobRequest{JobId: "job-1"})
		return err
	}
	list := func(ctx context.Context, c pb.CoordinatorClient) error {
		_, err := c.ListJobs(ctx, &pb.ListJobsRequest{})
		return err
	}
	cases := []struct {
		name   string
		c      pb.CoordinatorClient
		ctx    context.Context
		call   call
		code   codes.Code
		reason string
	}{
		{"worker registers as itself", w1, bg, register("w1"), codes.OK, ""},
		{"worker claims another id", w1, bg, register("w2"), codes.PermissionDenied, "wrong_identity"},
		{"operator registers a worker", op, bg, register("w1"), codes.PermissionDenied, "wrong_role"},
		{"no certificate registers", none, bg, register("w1"), codes.Unauthenticated, "no_certificate"},
		{"another CA registers", forged, bg, register("w1"), codes.Unauthenticated, "unknown_ca"},
		{"operator cancels", op, bg, cancelJob, codes.OK, ""},
		{"worker cancels", w1, bg, cancelJob, codes.PermissionDenied, "wrong_role"},
		{"token cancels", none, withToken(string(token)), cancelJob, codes.OK, ""},
		{"wrong token cancels", none, withToken("not-the-token-at-all"), cancelJob, codes.Unauthenticated, "bad_token"},
		{"no token cancels", none, bg, cancelJob, codes.Unauthenticated, "no_certificate"},
		{"worker with token cancels", w1, withToken(string(token)), cancelJob, codes.OK, ""},
		{"reader lists", none, bg, list, codes.OK, ""},
		{"worker lists", w1, bg, list, codes.OK, ""},
		{"another CA lists", forged, bg, list, codes.Unauthenticated, "unknown_ca"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, calls := 0.0, stub.calls
			if tc.reason != "" {
				before = rej.Count("coordinator", tc.reason)
			}
			err := tc.call(tc.ctx, tc.c)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			if tc.code == codes.OK {
				if stub.calls != calls+1 {
					t.Fatal("handler not called")
				}
				return
			}
			if stub.calls != calls {
				t.Fatal("handler called for a refused call")
			}
			if got := rej.Count("coordinator", tc.reason); got != before+1 {
				t.Fatalf("rejections{reason=%s} %v → %v, want +1", tc.reason, before, got)
			}
		})
	}
	t.Run("message names the role", func(t *testing.T) {
		err := cancelJob(bg, w1)
		if s := status.Convert(err).Message(); !strings.Contains(s, "operator") {
			t.Fatalf("refusal %q does not name the operator role", s)
		}
	})
}
