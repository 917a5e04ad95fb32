package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/internal/freeport"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Config describes a local cluster.
type Config struct {
	Dir          string   // data, models and logs live here
	BinDir       string   // holds the coordinator and worker binaries
	Coordinators int      // default 3
	Workers      int      // default 2
	Threads      int      // matrix-product cores per worker (default 1: workers share the machine)
	WorkerEnv    []string // extra environment for workers, e.g. RINGMASTER_GEMM=generic
	// WorkerTimeout is the coordinators' --worker-timeout (default 3 s).
	WorkerTimeout time.Duration
	// CoordHost is the address coordinators listen on (default 127.0.0.1).
	CoordHost string
	// WorkerNet gives worker i (from 0) the host it listens on and a
	// command prefix that runs it, such as "ip netns exec NS" for a test
	// that puts workers on separate network stacks (nil: 127.0.0.1, run
	// directly).
	WorkerNet func(i int) (host string, prefix []string)
	// WorkerArgs are extra flags for every worker.
	WorkerArgs []string
	// Insecure runs every process without TLS (--insecure). By default the
	// cluster is mutual TLS throughout: Start makes a cluster CA in
	// Dir/tls (or reuses the one there) and issues a certificate per
	// coordinator and worker and one for the operator (Client, ringctl).
	Insecure bool
	// Containers runs every process in its own container on a private
	// Docker network instead of on 127.0.0.1 (see containers.go): each has
	// its own network stack and address, and Disconnect cuts one off.
	// Needs a Docker engine; not with CoordHost or WorkerNet.
	Containers bool
}

// Proc is one process of the cluster.
type Proc struct {
	Name string
	Args []string
	Log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}

	container, ip string // container mode: the container's name and address
}

// Cluster is a running local cluster.
type Cluster struct {
	cfg          Config
	Coordinators []*Proc
	Workers      []*Proc
	CoordAddrs   []string // gRPC addresses
	HTTPAddrs    []string // the coordinators' dashboard, /api/v1/ and /metrics
	WorkerHTTP   []string // the workers' /metrics, /healthz and /readyz, by worker
	// TLSDir holds the cluster CA and every process's certificate, and
	// the operator's (OperatorCert); "" for an insecure cluster.
	TLSDir string
	dial   []grpc.DialOption // how clients reach the coordinators
	net    *dockerNet        // container mode: the cluster's network

	spawnMu sync.Mutex
	spawn   chan spawnRequest // nil once stopped
}

type spawnRequest struct {
	cmd *exec.Cmd
	err chan error
}

// spawner starts every child from one OS thread that lives as long as the
// cluster: Linux's Pdeathsig fires when the thread that forked a child
// exits, not the process, so children must not be forked from a thread the
// Go runtime might retire.
func spawner(reqs <-chan spawnRequest) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for r := range reqs {
		r.err <- r.cmd.Start()
	}
}

// Start launches the coordinators and workers and waits (up to ctx) until
// the group has a leader and every worker has registered.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Coordinators == 0 {
		cfg.Coordinators = 3
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	if cfg.WorkerTimeout == 0 {
		cfg.WorkerTimeout = 3 * time.Second
	}
	for _, d := range []string{"logs", "models"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("local cluster: %w", err)
		}
	}
	c := &Cluster{cfg: cfg, spawn: make(chan spawnRequest)}
	// Where each process listens: 127.0.0.1 on free ports, or in container
	// mode its container's address on fixed ports.
	coordHosts, workerHosts := make([]string, cfg.Coordinators), make([]string, cfg.Workers)
	for i := range coordHosts {
		coordHosts[i] = cfg.CoordHost
		if coordHosts[i] == "" {
			coordHosts[i] = "127.0.0.1"
		}
	}
	for i := range workerHosts {
		workerHosts[i] = "127.0.0.1"
	}
	if cfg.Containers {
		if cfg.CoordHost != "" || cfg.WorkerNet != nil {
			return nil, errors.New("local cluster: Containers gives every process its own address; leave CoordHost and WorkerNet unset")
		}
		n, netErr := newDockerNet(ctx)
		if netErr != nil {
			return nil, fmt.Errorf("local cluster: %w", netErr)
		}
		c.net = n
		defer func() {
			if err != nil { // Start's result
				c.removeContainers() // the network, and any container made
			}
		}()
		for _, hosts := range [][]string{coordHosts, workerHosts} {
			for i := range hosts {
				if hosts[i], err = n.addr(); err != nil {
					return nil, fmt.Errorf("local cluster: %w", err)
				}
			}
		}
	}
	security := []string{"--insecure"}
	if !cfg.Insecure {
		c.TLSDir = filepath.Join(cfg.Dir, "tls")
		opt, err := issueCertificates(c.TLSDir, coordHosts, workerHosts)
		if err != nil {
			return nil, fmt.Errorf("local cluster: %w", err)
		}
		c.dial = []grpc.DialOption{opt}
		security = []string{"--tls-dir", c.TLSDir}
	}
	go spawner(c.spawn)
	// ports: each coordinator's raft and gRPC, then every process's HTTP.
	var ports []int
	if cfg.Containers {
		// Every container has an address of its own: the same ports on each.
		ports = slices.Repeat([]int{7300}, 3*cfg.Coordinators+cfg.Workers)
		for i := range cfg.Coordinators {
			ports[2*i], ports[2*i+1] = 7000, 7100
		}
	} else {
		var err error
		if ports, err = freePorts(3*cfg.Coordinators + cfg.Workers); err != nil {
			return nil, err
		}
	}
	var peers []string
	for i := range cfg.Coordinators {
		host := coordHosts[i]
		raft, grpcAddr := fmt.Sprintf("%s:%d", host, ports[2*i]), fmt.Sprintf("%s:%d", host, ports[2*i+1])
		peers = append(peers, fmt.Sprintf("c%d=%s=%s", i+1, raft, grpcAddr))
		c.CoordAddrs = append(c.CoordAddrs, grpcAddr)
		c.HTTPAddrs = append(c.HTTPAddrs, fmt.Sprintf("%s:%d", host, ports[2*cfg.Coordinators+i]))
	}
	for i := range cfg.Coordinators {
		name := fmt.Sprintf("c%d", i+1)
		raft, _, _ := strings.Cut(strings.TrimPrefix(peers[i], name+"="), "=")
		args := []string{
			filepath.Join(cfg.BinDir, "coordinator"), "--id", name, "--raft-addr", raft, "--grpc-addr", c.CoordAddrs[i],
			"--data-dir", filepath.Join(cfg.Dir, name), "--peers", strings.Join(peers, ","),
			"--worker-timeout", cfg.WorkerTimeout.String(), "--http-addr", c.HTTPAddrs[i],
		}
		c.Coordinators = append(c.Coordinators, &Proc{Name: name, Args: append(args, security...), ip: coordHosts[i]})
	}
	for i := range cfg.Workers {
		name := fmt.Sprintf("w%d", i+1)
		whost, prefix := workerHosts[i], []string(nil)
		if cfg.WorkerNet != nil {
			whost, prefix = cfg.WorkerNet(i)
		}
		c.WorkerHTTP = append(c.WorkerHTTP, fmt.Sprintf("%s:%d", whost, ports[3*cfg.Coordinators+i]))
		args := append(append([]string{}, prefix...),
			filepath.Join(cfg.BinDir, "worker"), "--id", name, "--coordinators", strings.Join(c.CoordAddrs, ","),
			"--listen", whost+":0", "--threads", fmt.Sprint(cfg.Threads), "--out-dir", filepath.Join(cfg.Dir, "models"),
			"--data-dir", filepath.Join(cfg.Dir, name), "--http-addr", c.WorkerHTTP[i])
		args = append(args, security...)
		c.Workers = append(c.Workers, &Proc{Name: name, Args: append(args, cfg.WorkerArgs...), ip: whost})
	}
	for _, p := range c.Procs() {
		if c.net != nil {
			p.container = c.net.name + "-" + p.Name
			if err := c.createContainer(ctx, p); err != nil {
				c.Stop()
				return nil, err
			}
		}
	}
	for _, p := range c.Procs() {
		if err := c.start(p); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Procs is every process of the cluster: the coordinators, then the workers.
func (c *Cluster) Procs() []*Proc {
	return append(append([]*Proc{}, c.Coordinators...), c.Workers...)
}

// extraEnv is the environment p gets beyond this process's: WorkerEnv for
// workers.
func (c *Cluster) extraEnv(p *Proc) []string {
	if strings.HasPrefix(p.Name, "w") {
		return c.cfg.WorkerEnv
	}
	return nil
}

// Client returns a coordinator client for the cluster (with the operator's
// certificate when the cluster runs TLS).
func (c *Cluster) Client() *coord.Client { return coord.NewClient(c.CoordAddrs, c.dial...) }

// OperatorCert is the file name (in TLSDir) of the operator certificate
// Start issues: what `ringctl` client commands present to a local cluster.
const OperatorCert = "operator"

// issueCertificates makes (or reuses) the cluster CA in dir, issues the
// coordinators' (c1…, on coordHosts) and workers' (w1…, on workerHosts)
// certificates and the operator's, and returns the dial option of a client
// presenting the operator's.
func issueCertificates(dir string, coordHosts, workerHosts []string) (grpc.DialOption, error) {
	ca, err := tlsauth.LoadCA(dir)
	if errors.Is(err, fs.ErrNotExist) {
		ca, err = tlsauth.InitDir(dir, 0, false)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster CA in %s: %w", dir, err)
	}
	type leaf struct {
		id   tlsauth.Identity
		host string
	}
	leaves := []leaf{{tlsauth.Identity{Role: tlsauth.RoleOperator, Name: OperatorCert}, "127.0.0.1"}}
	for i, h := range coordHosts {
		leaves = append(leaves, leaf{tlsauth.Identity{Role: tlsauth.RoleCoordinator, Name: fmt.Sprintf("c%d", i+1)}, h})
	}
	for i, h := range workerHosts {
		leaves = append(leaves, leaf{tlsauth.Identity{Role: tlsauth.RoleWorker, Name: fmt.Sprintf("w%d", i+1)}, h})
	}
	for _, l := range leaves {
		id, hosts := l.id, []string{"127.0.0.1", "localhost"}
		if l.host != "127.0.0.1" {
			hosts = append(hosts, l.host)
		}
		if _, err := ca.IssueToDir(dir, "", tlsauth.IssueOptions{Identity: id, Hosts: hosts}); err != nil {
			return nil, fmt.Errorf("issue %s: %w", id, err)
		}
	}
	return OperatorDialOption(dir)
}

// OperatorDialOption is how a client presenting the operator certificate
// in dir (a local cluster's TLSDir) dials the coordinators.
func OperatorDialOption(dir string) (grpc.DialOption, error) {
	src, err := tlsauth.Load(tlsauth.InDir(dir, OperatorCert), nil)
	if err != nil {
		return nil, err
	}
	return src.DialOption(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}), nil
}

// DashboardURL is the first coordinator's dashboard (every coordinator
// serves one showing the leader's view).
func (c *Cluster) DashboardURL() string { return "http://" + c.HTTPAddrs[0] + "/" }

// ModelDir is where a finished job's model is saved.
func (c *Cluster) ModelDir(job string) string { return filepath.Join(c.cfg.Dir, "models", job) }

// DataDir is where process p keeps its state (a worker's checkpoints, a
// coordinator's Raft log).
func (c *Cluster) DataDir(p *Proc) string { return filepath.Join(c.cfg.Dir, p.Name) }

func (c *Cluster) start(p *Proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Log = filepath.Join(c.cfg.Dir, "logs", p.Name+".log")
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("local cluster: %w", err)
	}
	var cmd *exec.Cmd
	if p.container != "" {
		cmd = exec.Command("docker", "start", "--attach", p.container)
	} else {
		cmd = exec.Command(p.Args[0], p.Args[1:]...)
		cmd.Env = append(os.Environ(), c.extraEnv(p)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttrs()
	if err := c.startCmd(cmd); err != nil {
		f.Close()
		return fmt.Errorf("local cluster: start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}(p.done)
	return nil
}

func (c *Cluster) startCmd(cmd *exec.Cmd) error {
	c.spawnMu.Lock()
	defer c.spawnMu.Unlock()
	if c.spawn == nil {
		return errors.New("the cluster has been stopped")
	}
	errc := make(chan error, 1)
	c.spawn <- spawnRequest{cmd, errc}
	return <-errc
}

// PID is the process id, 0 when it was never started.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Restart starts a stopped or killed process again with the same arguments
// (a coordinator keeps its data dir, a worker its id).
func (c *Cluster) Restart(p *Proc) error {
	p.Signal(syscall.SIGKILL)
	p.Wait()
	return c.start(p)
}

// Signal sends sig to the process (no-op when it is not running); in
// container mode to the container's process.
func (p *Proc) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.container != "" {
		if p.done != nil {
			select {
			case <-p.done:
			default:
				_, _ = docker(context.Background(), nil, "kill", "--signal", strconv.Itoa(int(sig)), p.container)
			}
		}
		return
	}
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait blocks until the process has exited.
func (p *Proc) Wait() {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop ends every process: SIGTERM to workers first (they finish or abort
// their step and leave), then to coordinators; SIGKILL after a grace period.
// A stopped cluster cannot start processes again.
func (c *Cluster) Stop() {
	defer c.removeContainers()
	defer func() {
		c.spawnMu.Lock()
		if c.spawn != nil {
			close(c.spawn)
			c.spawn = nil
		}
		c.spawnMu.Unlock()
	}()
	for _, group := range [][]*Proc{c.Workers, c.Coordinators} {
		for _, p := range group {
			p.Signal(syscall.SIGTERM)
		}
		deadline := time.After(5 * time.Second)
		for _, p := range group {
			done := make(chan struct{})
			go func() { p.Wait(); close(done) }()
			select {
			case <-done:
			case <-deadline:
				p.Signal(syscall.SIGKILL)
				p.Wait()
			}
		}
	}
}

func (c *Cluster) waitReady(ctx context.Context) error {
	cl := c.Client()
	defer cl.Close()
	return poll(ctx, func() error {
		for _, p := range c.Procs() {
			if !p.Running() {
				return fmt.Errorf("%w: %s exited; see %s", errFatal, p.Name, p.Log)
			}
		}
		// A short deadline per call: a process that exits at once must be
		// seen by the check above, not wait out ctx inside a dial.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ws, err := cl.ListWorkers(actx)
		cancel()
		if err != nil {
			return err
		}
		alive := 0
		for _, w := range ws {
			if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
				alive++
			}
		}
		if alive < len(c.Workers) {
			return fmt.Errorf("%d of %d workers registered", alive, len(c.Workers))
		}
		return nil
	})
}

var errFatal = errors.New("local cluster")

// poll calls f every 100 ms until it returns nil, a fatal error, or ctx ends
// (then the last error is returned with ctx's).
func poll(ctx context.Context, f func() error) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil || errors.Is(err, errFatal) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("local cluster not ready: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// freePorts returns n free TCP ports on 127.0.0.1, below the kernel's
// ephemeral range and claimed for this process (internal/freeport): a worker
// restarted on its port must not find it taken by an outgoing connection, nor
// by another cluster on the machine that picked it too.
func freePorts(n int) ([]int, error) {
	ps, err := freeport.Ports(n)
	if err != nil {
		return nil, fmt.Errorf("local cluster: %w", err)
	}
	return ps, nil
}
