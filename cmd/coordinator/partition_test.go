package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/coord/proccluster"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// netLab is a private network of namespaces: a hub namespace holding a
// bridge, one namespace per node (10.77.0.i on its eth0) and a veth from
// the test's own namespace (10.77.0.254), so the test reaches every node
// while a partition cuts nodes off from each other. The bridge sits in its
// own namespace so the host's firewall (Docker's FORWARD DROP) never sees
// the bridged frames.
type netLab struct {
	t      *testing.T
	prefix string
	nodes  []string // namespace per node
}

func (l *netLab) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (l *netLab) must(args ...string) {
	l.t.Helper()
	if err := l.ip(args...); err != nil {
		l.t.Fatal(err)
	}
}

// newNetLab builds the lab for n nodes or skips the test where network
// namespaces cannot be made (not root, no ip(8)).
func newNetLab(t *testing.T, n int) *netLab {
	if os.Geteuid() != 0 {
		t.Skip("network partitions need root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network partitions need ip(8) (iproute2)")
	}
	l := &netLab{t: t, prefix: fmt.Sprintf("rmp%d", os.Getpid()%100000)}
	hub := l.prefix + "h"
	if err := l.ip("netns", "add", hub); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		// our end goes first and synchronously: a namespace's devices are
		// freed lazily, and a next lab in this process reuses the name.
		_ = l.ip("link", "del", l.prefix+"r1")
		for _, ns := range l.nodes {
			_ = l.ip("netns", "del", ns)
		}
		_ = l.ip("netns", "del", hub) // removes the bridge and every veth end in it
	})
	l.must("-n", hub, "link", "add", "br0", "type", "bridge")
	l.must("-n", hub, "link", "set", "br0", "up")
	attach := func(outer, outerNS, inner, innerNS, addr string) {
		// outer end in the hub on the bridge, inner end in innerNS ("" = ours).
		l.must("link", "add", outer, "type", "veth", "peer", "name", inner)
		l.must("link", "set", outer, "netns", outerNS)
		l.must("-n", outerNS, "link", "set", outer, "master", "br0", "up")
		if innerNS != "" {
			// made under a unique name (ours may have an eth0), renamed inside.
			l.must("link", "set", inner, "netns", innerNS)
			l.must("-n", innerNS, "link", "set", inner, "name", "eth0")
			l.must("-n", innerNS, "addr", "add", addr+"/24", "dev", "eth0")
			l.must("-n", innerNS, "link", "set", "eth0", "up")
			l.must("-n", innerNS, "link", "set", "lo", "up")
		} else {
			l.must("addr", "add", addr+"/24", "dev", inner)
			l.must("link", "set", inner, "up")
		}
	}
	attach(l.prefix+"r0", hub, l.prefix+"r1", "", "10.77.0.254")
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("%sn%d", l.prefix, i)
		l.must("netns", "add", ns)
		l.nodes = append(l.nodes, ns)
		attach(fmt.Sprintf("%sv%d", l.prefix, i), hub, fmt.Sprintf("%se%d", l.prefix, i), ns, l.addr(i))
	}
	return l
}

func (l *netLab) addr(i int) string { return fmt.Sprintf("10.77.0.%d", i+1) }

// cut makes nodes i and j unreachable from each other (blackhole routes in
// both namespaces); heal undoes it.
func (l *netLab) cut(i, j int) {
	l.must("-n", l.nodes[i], "route", "add", "blackhole", l.addr(j)+"/32")
	l.must("-n", l.nodes[j], "route", "add", "blackhole", l.addr(i)+"/32")
}

func (l *netLab) heal(i, j int) {
	l.must("-n", l.nodes[i], "route", "del", "blackhole", l.addr(j)+"/32")
	l.must("-n", l.nodes[j], "route", "del", "blackhole", l.addr(i)+"/32")
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
	lab := newNetLab(t, 3)
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
		n.RaftAddr, n.GRPCAddr, n.HTTPAddr = lab.addr(i)+":7000", lab.addr(i)+":7001", lab.addr(i)+":7002"
	}
	c.Command = func(i int, name string, args ...string) *exec.Cmd {
		return exec.Command("ip", append([]string{"netns", "exec", lab.nodes[i], name}, args...)...)
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
			lab.cut(old, i)
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
		lab.heal(old, i)
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
