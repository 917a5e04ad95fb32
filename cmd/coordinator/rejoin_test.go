package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
)

// TestWipedNodeRejoinsAsNewMember SIGKILLs the leader of three coordinator
// processes, deletes its data dir and starts it again with the same --peers
// (what a restarted pod or compose service does). It must not bootstrap a
// fresh log (it forgot its votes and could help elect a second leader in a
// term it voted in): it rejoins as a new member — the leader drops its old
// voter entry, it catches up as a non-voter, then votes again — and then it
// carries the quorum for a write when another node is killed.
func TestWipedNodeRejoinsAsNewMember(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the coordinator binary")
	}
	dir := t.TempDir()
	c := startGroup(t, dir)
	cl := coord.NewClient(c.Addrs())
	defer cl.Close()
	if _, err := cl.SubmitJob(ctxT(t, 20*time.Second), []byte(spec)); err != nil {
		t.Fatalf("submit: %v", err)
	}
	wiped, err := c.Leader(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(wiped); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.Nodes[wiped].DataDir); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SubmitJob(ctxT(t, 20*time.Second), []byte(spec)); err != nil {
		t.Fatalf("write with the leader gone: %v", err)
	}
	if err := c.Start(wiped); err != nil {
		t.Fatal(err)
	}

	w := c.Nodes[wiped]
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs := -1
		one := coord.NewClient([]string{w.GRPCAddr})
		if js, err := one.ListJobs(ctxT(t, 2*time.Second)); err == nil {
			jobs = len(js)
		}
		one.Close()
		voter := false
		if st, err := cl.Status(ctxT(t, 2*time.Second)); err == nil {
			for _, m := range st.Members {
				voter = voter || m.Id == w.ID && m.Suffrage == "voter"
			}
		}
		// The old entry stays a voter until the leader replaces it, so
		// "voter" alone can be the old entry's: wait for the removal too.
		removed := false
		for i, n := range c.Nodes {
			if b, _ := os.ReadFile(n.LogPath); i != wiped && strings.Contains(string(b), "its old voter entry is removed") {
				removed = true
			}
		}
		if jobs == 2 && voter && removed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wiped node %s: %d jobs (want 2), voter %v, old voter entry removed by a leader %v", w.ID, jobs, voter, removed)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	if b, _ := os.ReadFile(w.LogPath); !strings.Contains(string(b), "rejoining as a new member instead of bootstrapping") {
		t.Errorf("%s's log does not say it rejoins instead of bootstrapping", w.ID)
	}

	// The rejoined node is a full voter: with another node killed, the
	// remaining two (it among them) still commit writes.
	other := (wiped + 1) % 3
	if l, err := c.Leader(ctxT(t, 10*time.Second)); err == nil && l != wiped {
		other = l
	}
	if err := c.Kill(other); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.SubmitJob(ctxT(t, 20*time.Second), []byte(spec)); err != nil {
		t.Fatalf("write with %s killed and the rejoined node voting: %v", c.Nodes[other].ID, err)
	}
	if n := jobCount(t, w.GRPCAddr); n != 3 {
		t.Fatalf("rejoined node has %d jobs, want 3", n)
	}
}
