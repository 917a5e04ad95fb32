package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Rotating the whole PKI under a training job: a new CA and new
// certificates for every process, then SIGHUP. The job never stops (same
// generation, checkpoints keep being committed), every coordinator presents
// its new certificate on the next handshake, the old operator certificate is
// refused, and a worker restarted afterwards registers and re-forms the
// collective links (new handshakes, new CA) with the one that kept running.
func TestClusterRotatesCertificatesUnderAJob(t *testing.T) {
	c := startCluster(t, 2)
	cl := c.Client()
	defer cl.Close()
	spec := smallSpec(t, "train.max_iters=10000000", "parallel.min_workers=2")
	job, err := cl.SubmitJob(context.Background(), spec.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	reader := cl // the operator client of the current CA
	get := func() *pb.GetJobResponse {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := reader.GetJob(ctx, job.Id)
		if err != nil {
			return nil
		}
		return r
	}
	// waitFor polls the job until cond holds.
	waitFor := func(what string, limit time.Duration, cond func(*pb.GetJobResponse) bool) *pb.GetJobResponse {
		t.Helper()
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			if r := get(); r != nil && r.Generation != nil && cond(r) {
				return r
			}
			time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
		}
		t.Fatalf("job %s: not %s within %v (now %v)", job.Id, what, limit, get())
		return nil
	}
	committed := func(r *pb.GetJobResponse) int64 {
		var s int64
		for _, ck := range r.Checkpoints {
			s = max(s, ck.Step)
		}
		return s
	}
	before := waitFor("training on 2 workers with a checkpoint", time.Minute, func(r *pb.GetJobResponse) bool {
		return len(r.Generation.Ranks) == 2 && committed(r) > 0
	})
	gen := before.Generation.Number

	// Keep the old operator credentials, then replace everything.
	old := t.TempDir()
	for _, f := range []string{"ca.crt", "operator.crt", "operator.key"} {
		b, err := os.ReadFile(filepath.Join(c.TLSDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(old, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := tlsauth.InitDir(c.TLSDir, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []tlsauth.Identity
	for _, p := range c.Coordinators {
		ids = append(ids, tlsauth.Identity{Role: tlsauth.RoleCoordinator, Name: p.Name})
	}
	for _, p := range c.Workers {
		ids = append(ids, tlsauth.Identity{Role: tlsauth.RoleWorker, Name: p.Name})
	}
	ids = append(ids, tlsauth.Identity{Role: tlsauth.RoleOperator, Name: OperatorCert})
	for _, id := range ids {
		if _, err := ca.IssueToDir(c.TLSDir, "", tlsauth.IssueOptions{Identity: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range append(append([]*Proc{}, c.Coordinators...), c.Workers...) {
		p.Signal(syscall.SIGHUP)
	}

	// Every coordinator's next handshake shows its new certificate.
	for i, p := range c.Coordinators {
		want := certSerial(t, filepath.Join(c.TLSDir, p.Name+".crt"))
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, err := servedSerial(c.CoordAddrs[i])
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still serves serial %s (%v), want the new %s", p.Name, got, err, want)
			}
			time.Sleep(100 * time.Millisecond) // polling interval
		}
	}
	// The new operator certificate works (a fresh client, new connections);
	// the old one is refused, on a new connection and on the one it had
	// (every call is checked against the current CA).
	fresh, err := OperatorDialOption(c.TLSDir)
	if err != nil {
		t.Fatal(err)
	}
	cl2 := coord.NewClient(c.CoordAddrs, fresh)
	defer cl2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cl2.ListWorkers(ctx); err != nil {
		t.Fatalf("new operator certificate: %v", err)
	}
	reader = cl2
	oldDial, err := OperatorDialOption(old)
	if err != nil {
		t.Fatal(err)
	}
	cl3 := coord.NewClient(c.CoordAddrs[:1], oldDial)
	defer cl3.Close()
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	_, err = cl3.ListWorkers(short)
	cancelShort()
	if err == nil {
		t.Error("the old CA's operator certificate still lists workers")
	}
	if _, err := cl.ListWorkers(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old operator certificate on its open connection: %v, want Unauthenticated", err)
	}

	// The job never stopped: same generation, more checkpoints committed.
	rotatedAt := committed(get())
	r := waitFor("committing past the rotation", time.Minute, func(r *pb.GetJobResponse) bool {
		return committed(r) >= rotatedAt+200
	})
	if r.Generation.Number != gen {
		t.Errorf("generation %d → %d across the rotation: the job was re-planned (%s)", gen, r.Generation.Number, r.Generation.Reason)
	}
	t.Logf("rotated at committed step %d; generation %d still training at %d", rotatedAt, gen, committed(r))

	// A restarted worker handshakes everything anew under the new CA.
	w2 := c.Workers[1]
	if err := c.Restart(w2); err != nil {
		t.Fatal(err)
	}
	after := committed(get())
	r = waitFor("training on both workers again after the restart", 2*time.Minute, func(r *pb.GetJobResponse) bool {
		return r.Generation.Number > gen && len(r.Generation.Ranks) == 2 && committed(r) > after+100
	})
	t.Logf("restarted %s: generation %d on %d ranks, committed step %d", w2.Name, r.Generation.Number, len(r.Generation.Ranks), committed(r))
	if _, err := cl2.CancelJob(ctx, job.Id, "test done"); err != nil {
		t.Fatal(err)
	}
}

// certSerial is the serial number of the PEM certificate in path.
func certSerial(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: not PEM", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber.String()
}

// servedSerial is the serial number of the certificate addr presents in a
// new TLS handshake (not verified: only which certificate it is).
func servedSerial(addr string) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS13})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s presented no certificate", addr)
	}
	return certs[0].SerialNumber.String(), nil
}
