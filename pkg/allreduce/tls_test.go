package allreduce

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// testPKI is a cluster CA in a directory, issuing worker certificates.
type testPKI struct {
	dir string
	ca  *tlsauth.CA
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlsauth.InitDir(dir, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{dir: dir, ca: ca}
}

// source issues a certificate for role/name and loads it.
func (p *testPKI) source(t testing.TB, role tlsauth.Role, name string) *tlsauth.Source {
	t.Helper()
	if _, err := p.ca.IssueToDir(p.dir, "", tlsauth.IssueOptions{Identity: tlsauth.Identity{Role: role, Name: name}}); err != nil {
		t.Fatal(err)
	}
	s, err := tlsauth.Load(tlsauth.InDir(p.dir, name), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tlsWorker starts a peer server with mutual TLS as worker id.
func tlsWorker(t testing.TB, p *testPKI, id string, opts ServerOptions) (*worker, *tlsauth.Rejections) {
	t.Helper()
	opts.TLS = p.source(t, tlsauth.RoleWorker, id)
	opts.Rejections = tlsauth.NewRejections(nil, nil)
	return startWorkerWith(t, opts), opts.Rejections
}

// TestTLSLinksCarryCollectives: with mutual TLS every transport still
// moves the same bits, and the bulk TCP streams really are TLS.
func TestTLSLinksCarryCollectives(t *testing.T) {
	p := newTestPKI(t)
	for _, tc := range []struct {
		name string
		mode Mode
		opts ServerOptions
		want string
	}{
		{"unix", ModeBulk, ServerOptions{BulkAddr: "127.0.0.1:0"}, "unix"},
		{"tcp", ModeTCP, ServerOptions{BulkAddr: "127.0.0.1:0"}, "tcp"},
		{"grpc", ModeGRPC, ServerOptions{}, "grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "unix" && hostID() == "" {
				t.Skip("no host id on this platform")
			}
			const n = 3
			ids := []string{"w0-" + tc.name, "w1-" + tc.name, "w2-" + tc.name}
			var ws []*worker
			var addrs []string
			for _, id := range ids {
				w, _ := tlsWorker(t, p, id, tc.opts)
				ws = append(ws, w)
				addrs = append(addrs, w.addr)
			}
			g := &group{}
			var eps []*endpoint
			for r, w := range ws {
				tr, err := w.srv.Join(GroupConfig{Job: "j", Generation: 1, Rank: r, Peers: addrs, PeerIDs: ids, PeerTimeout: 10 * time.Second, Mode: tc.mode})
				if err != nil {
					t.Fatal(err)
				}
				eps = append(eps, tr.(*endpoint))
				g.comms = append(g.comms, New(tr, Options{ChunkBytes: 4 << 10, SmallBytes: 1 << 10}))
			}
			t.Cleanup(g.close)
			ctx := testCtx(t)
			in := inputs(3, n, 40_009)
			bufs := clone(in)
			noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }))
			if err := closeTo(bufs[0], naive(in, Sum), n); err != nil {
				t.Fatal(err)
			}
			for r, ep := range eps {
				next := (r + 1) % n
				if got := ep.LinkKind(next, true); got != tc.want {
					t.Errorf("link %d→%d carries frames over %q, want %q", r, next, got, tc.want)
				}
				in := eps[next].in[r]
				in.mu.Lock()
				tr, _ := in.r.(*tcpReader)
				in.mu.Unlock()
				if tc.want == "tcp" {
					if _, isTLS := tr.c.(*tls.Conn); !isTLS {
						t.Errorf("link %d→%d: bulk TCP stream is a %T, want *tls.Conn", r, next, tr.c)
					}
				}
			}
		})
	}
}

// TestTLSRefusesLinksFromTheWrongWorker: a link is accepted only from the
// worker the generation puts at the sending rank; a stranger's attempts,
// on every path, are refused before a frame is read, counted, and leave
// the group working.
func TestTLSRefusesLinksFromTheWrongWorker(t *testing.T) {
	p := newTestPKI(t)
	opts := ServerOptions{BulkAddr: "127.0.0.1:0"}
	a, aRej := tlsWorker(t, p, "wa", opts)
	b, _ := tlsWorker(t, p, "wb", opts)
	addrs := []string{a.addr, b.addr}
	ctx := testCtx(t)

	// a's rank tables put "wx" at rank 1; wb (at rank 1 in its own tables)
	// must be refused by a, on each transport.
	for i, mode := range []Mode{ModeBulk, ModeTCP, ModeGRPC} {
		job := fmt.Sprintf("j%d", i)
		trA, err := a.srv.Join(GroupConfig{Job: job, Generation: 1, Rank: 0, Peers: addrs, PeerIDs: []string{"wa", "wx"}, PeerTimeout: 5 * time.Second, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer trA.Close()
		trB, err := b.srv.Join(GroupConfig{Job: job, Generation: 1, Rank: 1, Peers: addrs, PeerIDs: []string{"wa", "wb"}, PeerTimeout: 5 * time.Second, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer trB.Close()
		err = trB.Send(ctx, 0, Header{Job: JobHash(job), Generation: 1, Kind: KindBarrier}, nil)
		if !errors.Is(err, ErrUnauthorized) {
			t.Errorf("mode %d: send from wb as rank 1 of a group that has wx there: %v, want ErrUnauthorized", mode, err)
		}
	}
	if got := aRej.Count("peer", "wrong_rank"); got != 3 {
		t.Errorf("wrong_rank peer rejections counted: %v, want 3 (one per transport)", got)
	}

	// Without a certificate: the gRPC peer service says Unauthenticated.
	anon, err := tlsauth.AnonymousDialOption(filepath.Join(p.dir, "ca.crt"), tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(a.addr, anon)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hello := &pb.PeerHello{Job: "j0", Generation: 1, From: 1, To: 0, WorldSize: 2}
	_, err = pb.NewPeerCollectiveClient(cc).OpenBulk(ctx, hello)
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("OpenBulk without a certificate: %v, want Unauthenticated", err)
	}

	// The bulk TCP port: a plaintext hello is never answered with a status
	// byte; a TLS client without a certificate or from another CA fails
	// the handshake and is counted.
	if got := plaintextHello(t, a.srv.BulkAddr(), hello); got != "" {
		t.Errorf("plaintext hello on the bulk port: %s", got)
	}
	other := newTestPKI(t).source(t, tlsauth.RoleWorker, "wb")
	before := aRej.Count("bulk", "no_certificate") + aRej.Count("bulk", "unknown_ca")
	for _, cfg := range []*tls.Config{
		{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
		{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, GetClientCertificate: other.ClientConfig(tlsauth.Expect{}).GetClientCertificate},
	} {
		if err := tlsHello(a.srv.BulkAddr(), cfg, hello); err == nil {
			t.Errorf("bulk TLS link without a cluster certificate was accepted")
		}
	}
	if got := aRej.Count("bulk", "no_certificate") + aRej.Count("bulk", "unknown_ca") - before; got != 2 {
		t.Errorf("bulk handshakes refused and counted: %v, want 2", got)
	}

	// The Unix socket: a hello without the token OpenBulk hands out.
	if hostID() != "" {
		c, err := net.Dial("unix", a.srv.localAddr)
		if err != nil {
			t.Fatal(err)
		}
		if st := writeHello(t, c, hello); st != bulkUnauthorized {
			t.Errorf("unix hello without a token: status %d, want %d (unauthorized)", st, bulkUnauthorized)
		}
		if got := aRej.Count("bulk", "bad_token"); got != 1 {
			t.Errorf("bad_token rejections: %v, want 1", got)
		}
	}

	// Nothing of this touched the group: the real rank 1 still links up.
	ga, err := a.srv.Join(GroupConfig{Job: "k", Generation: 1, Rank: 0, Peers: addrs, PeerIDs: []string{"wa", "wb"}, PeerTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gb, err := b.srv.Join(GroupConfig{Job: "k", Generation: 1, Rank: 1, Peers: addrs, PeerIDs: []string{"wa", "wb"}, PeerTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	g := &group{comms: []*Communicator{New(ga, Options{}), New(gb, Options{})}}
	defer g.close()
	bufs := clone(inputs(5, 2, 1000))
	want := naive(bufs, Sum)
	noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }))
	if err := closeTo(bufs[1], want, 2); err != nil {
		t.Fatal(err)
	}
}

// TestTLSJoinNeedsPeerIDs: with TLS a group must say who each rank is.
func TestTLSJoinNeedsPeerIDs(t *testing.T) {
	p := newTestPKI(t)
	a, _ := tlsWorker(t, p, "wa", ServerOptions{})
	_, err := a.srv.Join(GroupConfig{Job: "j", Generation: 1, Rank: 0, Peers: []string{a.addr, "127.0.0.1:1"}})
	if err == nil {
		t.Fatal("join without PeerIDs under TLS succeeded")
	}
}

// plaintextHello sends a bulk hello without TLS and returns what went
// wrong from the attacker's side: "" when the server answered nothing a
// link could use (it closed, or spoke TLS).
func plaintextHello(t *testing.T, addr string, h *pb.PeerHello) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := writeHello(t, c, h); st == bulkOK {
		return "answered bulkOK"
	}
	return ""
}

// writeHello writes a bulk hello and returns the status byte (255: none).
func writeHello(t *testing.T, c net.Conn, h *pb.PeerHello) byte {
	t.Helper()
	b, err := proto.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	if _, err := c.Write(append(msg, b...)); err != nil {
		return 255
	}
	var st [1]byte
	if _, err := io.ReadFull(c, st[:]); err != nil {
		return 255
	}
	return st[0]
}

// tlsHello completes a TLS handshake with cfg and sends a hello.
func tlsHello(addr string, cfg *tls.Config, h *pb.PeerHello) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := dialBulk(ctx, "tcp", addr, h, cfg)
	return err
}
