package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ringmaster-ml/ringmaster/internal/netlab"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/coord/proccluster"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// newLab builds a network-namespace lab or skips the test where it cannot.
func newLab(t *testing.T, prefix string, subnet, n int) *netlab.Lab {
	lab, err := netlab.New(fmt.Sprintf("%s%d", prefix, os.Getpid()%10000), subnet, n)
	if errors.Is(err, netlab.ErrUnsupported) {
		t.Skipf("network partitions: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	return lab
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLeaderPartition: three coordinators, each in its own network
// namespace. The leader is cut off from both followers (it still answers
// the test). The majority elects a new leader in a higher term and takes
// writes; the isolated node never commits one (it steps down; a write sent
// straight to it fails); after the partition heals it follows the new
// leader and holds exactly the majority's state.
func TestLeaderPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the coordinator and runs it in network namespaces")
	}
	lab := newLab(t, "rmc", 0, 3)
	dir := t.TempDir()
	bin, err := proccluster.Build(ctxT(t, 2*time.Minute), dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := proccluster.New(bin, dir, 3, "--raft-timeout", "300ms", "--log-level", "warn")
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range c.Nodes {
		n.RaftAddr, n.GRPCAddr, n.HTTPAddr = lab.Addr(i)+":7000", lab.Addr(i)+":7001", lab.Addr(i)+":7002"
	}
	c.Command = func(i int, name string, args ...string) *exec.Cmd {
		pre := lab.Prefix(i)
		return exec.Command(pre[0], append(append(pre[1:], name), args...)...)
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
	all := coord.NewClient(c.Addrs())
	defer all.Close()
	if _, err := all.SubmitJob(ctxT(t, 30*time.Second), []byte(spec)); err != nil {
		t.Fatalf("submit before the partition: %v", err)
	}
	old, err := c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	oldTerm := nodeStatus(t, all, c.Nodes[old].GRPCAddr).Term
	var majority []int
	for i := range c.Nodes {
		if i != old {
			majority = append(majority, i)
			must(t, lab.Cut(old, i))
		}
	}

	// The majority elects a new leader in a higher term and serves writes.
	var newLeader int
	waitFor(t, "the majority elects a leader", 20*time.Second, func() bool {
		for _, i := range majority {
			if st, err := all.StatusAt(ctxT(t, time.Second), c.Nodes[i].GRPCAddr); err == nil && st.RaftState == "Leader" && st.Term > oldTerm {
				newLeader = i
				return true
			}
		}
		return false
	})
	var majAddrs []string
	for _, i := range majority {
		majAddrs = append(majAddrs, c.Nodes[i].GRPCAddr)
	}
	maj := coord.NewClient(majAddrs)
	defer maj.Close()
	if _, err := maj.SubmitJob(ctxT(t, 20*time.Second), []byte(spec)); err != nil {
		t.Fatalf("write to the majority during the partition: %v", err)
	}

	// The isolated node stops leading and commits nothing: a write sent to it
	// directly (no redirects) fails.
	waitFor(t, "the isolated leader steps down", 20*time.Second, func() bool {
		st, err := all.StatusAt(ctxT(t, time.Second), c.Nodes[old].GRPCAddr)
		return err == nil && st.RaftState != "Leader"
	})
	conn, err := grpc.NewClient(c.Nodes[old].GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewCoordinatorClient(conn).SubmitJob(ctxT(t, 5*time.Second), &pb.SubmitJobRequest{Spec: []byte(spec)}); err == nil {
		t.Fatal("the isolated minority accepted a write")
	}

	// Heal: the old leader follows the new one and converges on its state.
	for _, i := range majority {
		must(t, lab.Heal(old, i))
	}
	want := jobIDs(t, maj)
	if len(want) != 2 {
		t.Fatalf("majority holds jobs %v, want the 2 acknowledged", want)
	}
	waitFor(t, "the healed node follows the new leader with the same jobs", 30*time.Second, func() bool {
		st, err := all.StatusAt(ctxT(t, time.Second), c.Nodes[old].GRPCAddr)
		// its leader is one of the majority: never itself, its log is behind.
		if err != nil || st.RaftState != "Follower" || !slices.ContainsFunc(majority, func(i int) bool { return st.LeaderId == c.Nodes[i].ID }) {
			return false
		}
		one := coord.NewClient([]string{c.Nodes[old].GRPCAddr})
		defer one.Close()
		got, err := one.ListJobs(ctxT(t, 2*time.Second))
		if err != nil {
			return false
		}
		var ids []string
		for _, j := range got {
			ids = append(ids, j.Id)
		}
		return slices.Equal(ids, want)
	})
	if st := nodeStatus(t, all, c.Nodes[old].GRPCAddr); st.Term <= oldTerm {
		t.Errorf("after healing, %s is in term %d, not past the partition's term %d", c.Nodes[old].ID, st.Term, oldTerm)
	}
	t.Logf("leader %s isolated in term %d; %s led the majority; healed", c.Nodes[old].ID, oldTerm, c.Nodes[newLeader].ID)
}

func nodeStatus(t *testing.T, cl *coord.Client, addr string) *pb.StatusResponse {
	t.Helper()
	st, err := cl.StatusAt(ctxT(t, 5*time.Second), addr)
	if err != nil {
		t.Fatalf("status of %s: %v", addr, err)
	}
	return st
}

func jobIDs(t *testing.T, cl *coord.Client) []string {
	t.Helper()
	jobs, err := cl.ListJobs(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.Id)
	}
	return ids
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
