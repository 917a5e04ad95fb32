package localcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// A local cluster is mutual TLS by default: every process says so at
// start, a client without the operator's certificate gets nothing from the
// coordinators, and a worker's peer port refuses a caller without a worker
// certificate (counted on the worker's /metrics). The clusters the other
// tests start train through the same TLS links.
func TestClusterIsMutualTLSByDefault(t *testing.T) {
	c := startCluster(t, 2)
	if c.TLSDir == "" {
		t.Fatal("cluster started without TLS")
	}
	for _, p := range append(append([]*Proc{}, c.Coordinators...), c.Workers...) {
		b, err := os.ReadFile(p.Log)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "mutual TLS on") || strings.Contains(string(b), "WITHOUT TLS") {
			t.Errorf("%s's log does not say it runs mutual TLS", p.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The operator (Client) sees the workers; a plaintext client does not.
	op := c.Client()
	defer op.Close()
	ws, err := op.ListWorkers(ctx)
	if err != nil || len(ws) != 2 {
		t.Fatalf("operator lists workers: %d, %v", len(ws), err)
	}
	plain := coord.NewClient(c.CoordAddrs)
	defer plain.Close()
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	if _, err := plain.ListWorkers(short); err == nil {
		t.Error("a plaintext client listed the workers of a TLS cluster")
	}
	cancelShort()

	// A worker's peer port: plaintext does not get a status at all, a TLS
	// caller without a certificate gets Unauthenticated.
	hello := &pb.PeerHello{Job: "any", Generation: 1, From: 1, To: 0, WorldSize: 2}
	cc, err := grpc.NewClient(ws[0].Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort = context.WithTimeout(ctx, 3*time.Second)
	_, err = pb.NewPeerCollectiveClient(cc).OpenBulk(short, hello)
	cancelShort()
	cc.Close()
	if err == nil || status.Code(err) == codes.NotFound {
		t.Errorf("plaintext OpenBulk on a worker's peer port: %v, want a transport failure", err)
	}
	anon, err := tlsauth.AnonymousDialOption(filepath.Join(c.TLSDir, "ca.crt"), tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err = grpc.NewClient(ws[0].Address, anon)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := pb.NewPeerCollectiveClient(cc).OpenBulk(ctx, hello); status.Code(err) != codes.Unauthenticated {
		t.Errorf("OpenBulk without a certificate: %v, want Unauthenticated", err)
	}
	fams, err := scrapeMetrics(c.workerHTTP(t, ws[0].Id))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := seriesValue(fams, tlsauth.RejectionsMetric, "component", "peer", "reason", "no_certificate"); v != 1 {
		t.Errorf("%s counts %v peer rejections without a certificate, want 1", ws[0].Id, v)
	}
}
