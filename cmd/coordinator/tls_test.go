package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/coord/proccluster"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// TestTLSRefusesForgedCalls replays, against three coordinator processes
// running with mutual TLS, the calls an attacker made against a plaintext
// cluster: each is refused with the right status, the cluster state is
// the same before and after, and every refusal is counted.
func TestTLSRefusesForgedCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coordinator binary")
	}
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	ca, err := tlsauth.InitDir(certs, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(role tlsauth.Role, name string, o tlsauth.IssueOptions) {
		o.Identity = tlsauth.Identity{Role: role, Name: name}
		if _, err := ca.IssueToDir(certs, "", o); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"c1", "c2", "c3"} {
		issue(tlsauth.RoleCoordinator, c, tlsauth.IssueOptions{})
	}
	issue(tlsauth.RoleOperator, "alice", tlsauth.IssueOptions{})
	issue(tlsauth.RoleWorker, "w1", tlsauth.IssueOptions{})
	issue(tlsauth.RoleOperator, "old", tlsauth.IssueOptions{Now: time.Now().Add(-3 * time.Hour), Lifetime: time.Hour})
	token := "s3cret-token-0123456789"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	oca, err := tlsauth.InitDir(other, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oca.IssueToDir(other, "", tlsauth.IssueOptions{Identity: tlsauth.Identity{Role: tlsauth.RoleOperator, Name: "alice"}}); err != nil {
		t.Fatal(err)
	}

	c := startGroup(t, dir, "--tls-dir", certs, "--auth-token-file", tokenFile)
	coordOnly := tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}
	clientAs := func(certDir, name string) *coord.Client {
		src, err := tlsauth.Load(tlsauth.InDir(certDir, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		cl := coord.NewClient(c.Addrs(), src.DialOption(coordOnly))
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	op := clientAs(certs, "alice")
	waitVoters(t, c, op)
	w1 := clientAs(certs, "w1")
	anonOpt, err := tlsauth.AnonymousDialOption(filepath.Join(certs, tlsauth.CACertFile), coordOnly)
	if err != nil {
		t.Fatal(err)
	}
	anon := coord.NewClient(c.Addrs(), anonOpt)
	defer anon.Close()
	// The impostors trust the real coordinators (they only want to reach
	// them) but present certificates the cluster did not sign.
	impostorOpt := func(certDir, name string) grpc.DialOption {
		kp, err := tls.LoadX509KeyPair(filepath.Join(certDir, name+".crt"), filepath.Join(certDir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{kp}}))
	}
	otherCA := coord.NewClient(c.Addrs(), impostorOpt(other, "alice"))
	defer otherCA.Close()
	expired := coord.NewClient(c.Addrs(), impostorOpt(certs, "old"))
	defer expired.Close()

	// A job, submitted by the real operator.
	var job *pb.Job
	for ctx := ctxT(t, 30*time.Second); ; {
		if job, err = op.SubmitJob(ctx, []byte(spec)); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("submit as operator: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// No worker registers: the job stays pending, so any change between
	// the snapshots would be the forged calls'.
	snapshot := func() string {
		t.Helper()
		jobs, err := op.ListJobs(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ws, err := op.ListWorkers(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		st, err := op.Status(ctxT(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		b := prototext.Format(&pb.ListJobsResponse{Jobs: jobs}) + prototext.Format(&pb.ListWorkersResponse{Workers: ws})
		return b + "members " + strconv.Itoa(len(st.GetMembers()))
	}
	// The scheduler moves the job from queued to waiting (no workers); let
	// it settle so that the snapshots differ only by the forged calls.
	for ctx := ctxT(t, 30*time.Second); ; time.Sleep(20 * time.Millisecond) {
		if j, err := op.GetJob(ctx, job.Id); err == nil && j.GetJob().GetState() == pb.JobState_JOB_STATE_WAITING {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("job never waiting for workers: %v %v", j, err)
		}
	}
	before := snapshot()
	rejectionsBefore := totalRejections(t, c)

	cancelJob := func(cl *coord.Client) error {
		_, err := cl.CancelJob(ctxT(t, 10*time.Second), job.Id, "forged")
		return err
	}
	forged := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"no certificate lists workers", func() error { _, err := anon.ListWorkers(ctxT(t, 10*time.Second)); return err }, codes.Unauthenticated},
		{"no certificate gets the job", func() error { _, err := anon.GetJob(ctxT(t, 10*time.Second), job.Id); return err }, codes.Unauthenticated},
		{"no certificate cancels", func() error { return cancelJob(anon) }, codes.Unauthenticated},
		{"another CA cancels", func() error { return cancelJob(otherCA) }, codes.Unauthenticated},
		{"another CA lists workers", func() error { _, err := otherCA.ListWorkers(ctxT(t, 10*time.Second)); return err }, codes.Unauthenticated},
		{"expired operator cancels", func() error { return cancelJob(expired) }, codes.Unauthenticated},
		{"worker cancels", func() error { return cancelJob(w1) }, codes.PermissionDenied},
		{"worker submits", func() error { _, err := w1.SubmitJob(ctxT(t, 10*time.Second), []byte(spec)); return err }, codes.PermissionDenied},
		{"worker removes a coordinator", func() error { return w1.RemoveCoordinator(ctxT(t, 10*time.Second), "c2") }, codes.PermissionDenied},
		{"no certificate removes a coordinator", func() error { return anon.RemoveCoordinator(ctxT(t, 10*time.Second), "c2") }, codes.Unauthenticated},
		{"worker registers a fake worker", func() error {
			_, err := w1.RegisterWorker(ctxT(t, 10*time.Second), &pb.RegisterWorkerRequest{WorkerId: "fake", Address: "10.9.9.9:1", Cores: 64, ProtocolVersion: coord.ProtocolVersion})
			return err
		}, codes.PermissionDenied},
		{"operator registers a worker", func() error {
			_, err := op.RegisterWorker(ctxT(t, 10*time.Second), &pb.RegisterWorkerRequest{WorkerId: "fake", Address: "10.9.9.9:1", Cores: 64, ProtocolVersion: coord.ProtocolVersion})
			return err
		}, codes.PermissionDenied},
		{"worker reports another worker's final checkpoint", func() error {
			_, err := w1.ReportCheckpoint(ctxT(t, 10*time.Second), &pb.ReportCheckpointRequest{WorkerId: "w2", JobId: job.Id, Step: 5, Final: true})
			return err
		}, codes.PermissionDenied},
		{"no certificate reports a final checkpoint", func() error {
			_, err := anon.ReportCheckpoint(ctxT(t, 10*time.Second), &pb.ReportCheckpointRequest{WorkerId: "w1", JobId: job.Id, Step: 5, Final: true})
			return err
		}, codes.Unauthenticated},
		{"worker session posing as another worker", func() error {
			_, err := w1.OpenSession(ctxT(t, 10*time.Second), &pb.WorkerMessage{WorkerId: "w2", FatalError: "forged"})
			return err
		}, codes.PermissionDenied},
		{"no certificate opens a session", func() error {
			_, err := anon.OpenSession(ctxT(t, 10*time.Second), &pb.WorkerMessage{WorkerId: "w1", FatalError: "forged"})
			return err
		}, codes.Unauthenticated},
	}
	for _, f := range forged {
		if err := f.call(); status.Code(err) != f.code {
			t.Errorf("%s: got %v, want %v", f.name, err, f.code)
		}
	}
	wrongToken := coord.NewClient(c.Addrs(), anonOpt, grpc.WithPerRPCCredentials(tlsauth.TokenCredentials("not-the-token-0000000")))
	defer wrongToken.Close()
	if err := cancelJob(wrongToken); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong token cancels: got %v, want Unauthenticated", err)
	}
	want := float64(len(forged) + 1)

	if after := snapshot(); after != before {
		t.Errorf("cluster state changed by refused calls:\nbefore %s\nafter  %s", before, after)
	}
	if got := totalRejections(t, c) - rejectionsBefore; got != want {
		t.Errorf("ringmaster_auth_rejections_total rose by %v, want %v", got, want)
	}

	// Raft: a worker's certificate does not get a raft connection.
	wkp, err := tls.LoadX509KeyPair(filepath.Join(certs, "w1.crt"), filepath.Join(certs, "w1.key"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := tls.Dial("tcp", c.Nodes[0].RaftAddr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{wkp}})
	if err == nil {
		rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = rc.Read(make([]byte, 1))
		rc.Close()
	}
	if err == nil {
		t.Error("raft port accepted a worker certificate")
	}

	// The right token works in place of the operator certificate.
	token1 := coord.NewClient(c.Addrs(), anonOpt, grpc.WithPerRPCCredentials(tlsauth.TokenCredentials(token)))
	defer token1.Close()
	if err := cancelJob(token1); err != nil {
		t.Fatalf("cancel with the auth token: %v", err)
	}
}

var rejectionLine = regexp.MustCompile(`(?m)^ringmaster_auth_rejections_total\{component="coordinator",reason="[a-z_]+"\} ([0-9.e+]+)$`)

// totalRejections sums the coordinator rejection counters of every node.
func totalRejections(t *testing.T, c *proccluster.Cluster) float64 {
	t.Helper()
	sum := 0.0
	for _, n := range c.Nodes {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+n.HTTPAddr+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("metrics of %s: %v", n.ID, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range rejectionLine.FindAllStringSubmatch(string(b), -1) {
			v, _ := strconv.ParseFloat(m[1], 64)
			sum += v
		}
	}
	return sum
}
