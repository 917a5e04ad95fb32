package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/coord/proccluster"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

const spec = `{"name": "p", "model": {"arch": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 8},
 "data": {"task": "sort", "length": 3, "digits": 3},
 "train": {"max_iters": 10, "batch_size": 4, "learning_rate": 0.001, "min_lr": 0.0001, "warmup_iters": 1,
  "beta1": 0.9, "beta2": 0.95, "weight_decay": 0, "grad_clip": 1, "seed": 1, "eval_interval": 0, "eval_iters": 1, "log_interval": 1}}`

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func jobCount(t *testing.T, addr string) int {
	t.Helper()
	cl := coord.NewClient([]string{addr})
	defer cl.Close()
	jobs, err := cl.ListJobs(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("list jobs at %s: %v", addr, err)
	}
	return len(jobs)
}

// startGroup builds the coordinator into dir and starts three processes of
// it with fast raft timeouts and extra flags; their logs are printed when the
// test fails, and they are killed when it ends.
func startGroup(t *testing.T, dir string, args ...string) *proccluster.Cluster {
	t.Helper()
	bin, err := proccluster.Build(ctxT(t, 2*time.Minute), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proccluster.New(bin, dir, 3, append([]string{"--raft-timeout", "300ms", "--log-level", "warn"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				b, _ := os.ReadFile(n.LogPath)
				t.Logf("%s log:\n%s", n.ID, b)
			}
		}
	})
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(args, "--tls-dir") { // a TLS group's test waits with its own client
		cl := coord.NewClient(c.Addrs())
		defer cl.Close()
		waitVoters(t, c, cl)
	}
	return c
}

// waitVoters waits until every node of c votes. The tests kill members
// and count on the others for a quorum; a node slow to start (a loaded CI
// machine) finds the others already running and joins as a non-voter that
// is promoted once caught up, and a leader killed before then leaves no
// quorum.
func waitVoters(t *testing.T, c *proccluster.Cluster, cl *coord.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		voters := 0
		if st, err := cl.Status(ctxT(t, 2*time.Second)); err == nil && st.LeaderId != "" {
			for _, m := range st.Members {
				if m.Suffrage == "voter" {
					voters++
				}
			}
		}
		if voters == len(c.Nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not reach %d voters within 30 s", len(c.Nodes))
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// TestThreeProcesses runs three coordinator processes on 127.0.0.1 and
// SIGKILLs them: a new leader serves the same state, a killed node rejoins
// from its data dir, and without a quorum writes fail cleanly.
func TestThreeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coordinator binary")
	}
	dir := t.TempDir()
	c := startGroup(t, dir)
	cl := coord.NewClient(c.Addrs())
	defer cl.Close()
	job, err := cl.SubmitJob(ctxT(t, 20*time.Second), []byte(spec))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	checkHTTP(t, c.Nodes[0].HTTPAddr)

	lead, err := c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(lead); err != nil {
		t.Fatal(err)
	}
	next, err := c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if next == lead {
		t.Fatal("killed node still leads")
	}
	r, err := cl.GetJob(ctxT(t, 10*time.Second), job.Id)
	if err != nil || r.Job.Id != job.Id {
		t.Fatalf("job after failover: %v %v", r, err)
	}
	if _, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(spec)); err != nil {
		t.Fatalf("write after failover: %v", err)
	}

	// Restart the killed node from its data dir: it rejoins and catches up.
	if err := c.Start(lead); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		cl1 := coord.NewClient([]string{c.Nodes[lead].GRPCAddr})
		jobs, err := cl1.ListJobs(ctxT(t, 2*time.Second))
		cl1.Close()
		if err == nil && len(jobs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node did not catch up: %d jobs, %v", len(jobs), err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	st, err := cl.Status(ctxT(t, 5*time.Second))
	if err != nil || len(st.Members) != 3 {
		t.Fatalf("members: %v %v", st, err)
	}

	// Kill two of three: writes fail (Unavailable), nothing is applied.
	lead, err = c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	survivor := (lead + 1) % 3
	for i := range c.Nodes {
		if i != survivor {
			if err := c.Kill(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	lone := coord.NewClient([]string{c.Nodes[survivor].GRPCAddr})
	defer lone.Close()
	if _, err := lone.SubmitJob(ctxT(t, 3*time.Second), []byte(spec)); status.Code(err) != codes.Unavailable {
		t.Fatalf("write without quorum: %v, want Unavailable", err)
	}
	if _, err := lone.CancelJob(ctxT(t, 2*time.Second), job.Id, ""); status.Code(err) != codes.Unavailable {
		t.Fatalf("cancel without quorum: %v, want Unavailable", err)
	}
	if n := jobCount(t, c.Nodes[survivor].GRPCAddr); n != 2 {
		t.Fatalf("no-quorum write changed state: %d jobs", n)
	}
	// Quorum returns.
	if err := c.Start(lead); err != nil {
		t.Fatal(err)
	}
	j3, err := cl.SubmitJob(ctxT(t, 20*time.Second), []byte(spec))
	if err != nil {
		t.Fatalf("write after quorum returned: %v", err)
	}
	if j3.Id != "job-3" {
		t.Fatalf("third job is %s: a failed write took effect", j3.Id)
	}
	r, err = cl.GetJob(ctxT(t, 5*time.Second), job.Id)
	if err != nil || r.Job.State == pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("the no-quorum cancel took effect: %v %v", r, err)
	}
}

// checkHTTP: /healthz, /readyz (a leader is known) and /metrics answer.
func checkHTTP(t *testing.T, addr string) {
	t.Helper()
	get := func(path string) (int, string) {
		req, err := http.NewRequestWithContext(ctxT(t, 5*time.Second), http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, series := range []string{"ringmaster_coord_is_leader", "ringmaster_raft_has_leader 1", "ringmaster_raft_term ", `ringmaster_raft_state{state="Leader"}`} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics has no %q", series)
		}
	}
}

// TestRingctl drives the ringctl cluster commands against real processes,
// through a follower (the CLI follows the redirect).
func TestRingctl(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	dir := t.TempDir()
	ringctl := filepath.Join(dir, "ringctl")
	if out, err := exec.CommandContext(ctxT(t, 2*time.Minute), "go", "build", "-o", ringctl,
		"github.com/ringmaster-ml/ringmaster/cmd/ringctl").CombinedOutput(); err != nil {
		t.Fatalf("build ringctl: %v\n%s", err, out)
	}
	bin, err := proccluster.Build(ctxT(t, 2*time.Minute), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proccluster.New(bin, dir, 3, "--raft-timeout", "300ms", "--log-level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	lead, err := c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	follower := c.Nodes[(lead+1)%3].GRPCAddr
	specPath := filepath.Join(dir, "job.json")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	ring := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctxT(t, 30*time.Second), ringctl, args...)
		cmd.Env = append(os.Environ(), "RINGMASTER_COORDINATORS="+follower)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"submit", specPath}, "job-1 queued"},
		{[]string{"submit", "--preset", "sort"}, "job-2 queued"},
		{[]string{"jobs"}, "job-2"},
		{[]string{"status", "job-1"}, "job job-1"},
		{[]string{"status"}, "leader"},
		{[]string{"workers"}, "WORKER"},
		{[]string{"cancel", "job-2"}, "job-2 cancelled"},
		{[]string{"coordinators"}, "Leader"},
	} {
		out, err := ring(tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("ringctl %v: %v\n%s(want %q)", tc.args, err, out, tc.want)
		}
	}
	out, err := ring("submit", os.DevNull)
	if err == nil || !strings.Contains(out, "InvalidArgument") {
		t.Errorf("empty spec accepted: %v\n%s", err, out)
	}
	// Remove a dead member.
	dead := (lead + 2) % 3
	if err := c.Kill(dead); err != nil {
		t.Fatal(err)
	}
	if out, err := ring("coordinators", "--remove", c.Nodes[dead].ID); err != nil {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	out, err = ring("coordinators")
	if err != nil || strings.Contains(out, c.Nodes[dead].ID+" ") {
		t.Fatalf("after remove: %v\n%s", err, out)
	}
}
