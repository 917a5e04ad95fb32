package proccluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/freeport"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
)

// Build compiles cmd/coordinator into dir and returns the binary's path.
// It must run inside the module.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "coordinator")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/ringmaster-ml/ringmaster/cmd/coordinator")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build coordinator: %w\n%s", err, out)
	}
	return bin, nil
}

// Node is one coordinator process.
type Node struct {
	ID, RaftAddr, GRPCAddr, HTTPAddr, DataDir, LogPath string

	cmd  *exec.Cmd
	done chan struct{}
}

// Running reports whether the process is up.
func (n *Node) Running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Cluster is a group of coordinator processes bootstrapped from one --peers list.
type Cluster struct {
	Bin   string
	Args  []string // extra flags for every node
	Nodes []*Node
	// Command builds node i's process (nil: exec.Command), e.g. to run it
	// in its own network namespace with "ip netns exec".
	Command func(i int, name string, args ...string) *exec.Cmd
}

// New lays out n nodes under dir with free loopback ports; nothing starts yet.
func New(bin, dir string, n int, args ...string) (*Cluster, error) {
	c := &Cluster{Bin: bin, Args: args}
	for i := 0; i < n; i++ {
		ra, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		ga, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		ha, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("c%d", i+1)
		c.Nodes = append(c.Nodes, &Node{ID: id, RaftAddr: ra, GRPCAddr: ga, HTTPAddr: ha,
			DataDir: filepath.Join(dir, id), LogPath: filepath.Join(dir, id+".log")})
	}
	return c, nil
}

// FreeAddr returns a free 127.0.0.1 port below the kernel's ephemeral range
// (so a restarted node does not find it taken by an outgoing connection),
// claimed so that no other process on the machine is handed it too.
func FreeAddr() (string, error) {
	as, err := freeport.Addrs(1)
	if err != nil {
		return "", err
	}
	return as[0], nil
}

// Peers is the --peers value for the whole group.
func (c *Cluster) Peers() string {
	var ps []string
	for _, n := range c.Nodes {
		ps = append(ps, n.ID+"="+n.RaftAddr+"="+n.GRPCAddr)
	}
	return strings.Join(ps, ",")
}

// Addrs are every node's gRPC address.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, n := range c.Nodes {
		a = append(a, n.GRPCAddr)
	}
	return a
}

// Start starts node i (again, from its data dir, after a kill).
func (c *Cluster) Start(i int) error {
	n := c.Nodes[i]
	if n.Running() {
		return fmt.Errorf("%s already running", n.ID)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	args := append([]string{"--id", n.ID, "--raft-addr", n.RaftAddr, "--grpc-addr", n.GRPCAddr,
		"--http-addr", n.HTTPAddr, "--data-dir", n.DataDir, "--peers", c.Peers()}, c.Args...)
	var cmd *exec.Cmd
	if c.Command != nil {
		cmd = c.Command(i, c.Bin, args...)
	} else {
		cmd = exec.Command(c.Bin, args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { // owned by the node: ends when the process exits
		_ = cmd.Wait()
		_ = logf.Close()
		close(n.done)
	}()
	return nil
}

// StartAll starts every node.
// It returns once every node serves HTTP (/healthz), which comes after it
// has opened its raft state and decided whether to bootstrap or rejoin.
func (c *Cluster) StartAll() error {
	for i := range c.Nodes {
		if err := c.Start(i); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		if err := n.waitServing(ctx); err != nil {
			return err
		}
	}
	return c.waitAllVoters(ctx)
}

// waitAllVoters polls the nodes' /api/v1/cluster until one of them follows
// a leader with every node a voter. A node that starts well after the
// others finds the group running and rejoins as a new member (a non-voter
// until it catches up); a test that kills a node before the promotion
// would find no quorum.
func (c *Cluster) waitAllVoters(ctx context.Context) error {
	cl := &http.Client{Timeout: time.Second}
	var last string
	for {
		for _, n := range c.Nodes {
			var st struct {
				Leader  string `json:"leader"`
				Members []struct {
					ID       string `json:"id"`
					Suffrage string `json:"suffrage"`
				} `json:"members"`
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+"/api/v1/cluster", nil)
			resp, err := cl.Do(req)
			if err != nil {
				last = err.Error()
				continue
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			voters := 0
			for _, m := range st.Members {
				if m.Suffrage == "voter" {
					voters++
				}
			}
			if err == nil && st.Leader != "" && voters == len(c.Nodes) && len(st.Members) == len(c.Nodes) {
				return nil
			}
			last = fmt.Sprintf("%s sees leader %q and %d of %d members voters (%v)", n.ID, st.Leader, voters, len(c.Nodes), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("coordinator group not formed: %s", last)
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
}

// waitServing polls the node's /healthz until it answers.
func (n *Node) waitServing(ctx context.Context) error {
	cl := &http.Client{Timeout: time.Second}
	for {
		if !n.Running() {
			return fmt.Errorf("%s exited before serving; see %s", n.ID, n.LogPath)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+"/healthz", nil)
		resp, err := cl.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s does not serve http://%s/healthz: %v", n.ID, n.HTTPAddr, err)
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
}

// Kill SIGKILLs node i and waits for it to be gone.
func (c *Cluster) Kill(i int) error {
	n := c.Nodes[i]
	if !n.Running() {
		return nil
	}
	if err := n.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", n.ID, err)
	}
	<-n.done
	return nil
}

// Close kills every node.
func (c *Cluster) Close() {
	for i := range c.Nodes {
		_ = c.Kill(i)
	}
}

// Leader polls the running nodes until one says it is the leader and
// returns its index.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cl := coord.NewClient(c.Addrs())
	defer cl.Close()
	for {
		for i, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			st, err := cl.StatusAt(sctx, n.GRPCAddr)
			cancel()
			if err == nil && st.RaftState == "Leader" {
				return i, nil
			}
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return -1, fmt.Errorf("no leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// RunningAddrs are the gRPC addresses of running nodes.
func (c *Cluster) RunningAddrs() []string {
	var a []string
	for _, n := range c.Nodes {
		if n.Running() {
			a = append(a, n.GRPCAddr)
		}
	}
	return a
}
