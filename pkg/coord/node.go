package coord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
)

// Config configures one coordinator node.
type Config struct {
	ID       string
	RaftAddr string // host:port to listen on and advertise for raft
	GRPCAddr string // the address clients reach this node's gRPC API at
	DataDir  string
	// Exactly one of Peers (bootstrap a new group; this node must be listed)
	// or Join (a coordinator's gRPC address) is used on first start; on a
	// restart with existing state both are ignored.
	Peers []Peer
	Join  string

	WorkerTimeout time.Duration // failure detector timeout (default 3 s)
	WorkerGrace   time.Duration // extra time a new leader gives every worker (default WorkerTimeout)
	// BrokenSessionGrace is how long a worker whose session stream broke
	// without a goodbye has to reopen it before it is lost (default and
	// cap: min(WorkerTimeout, 300 ms)).
	BrokenSessionGrace time.Duration

	// Raft timing; zero keeps hashicorp/raft's defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	RaftTLS *tls.Config // nil: plain TCP; tlsauth.Source.MutualConfig for mTLS between coordinators
	// DialOptions are used when this node calls another coordinator
	// (catch-up reads, joining); none: plaintext.
	DialOptions []grpc.DialOption
	// CredentialsVersion, with TLS, is the node's tlsauth.Source.Version:
	// its clients redial after a certificate rotation (coord.Client.RedialOnChange).
	CredentialsVersion func() uint64
	Logger             *slog.Logger // nil: slog.Default()
	RaftLog            io.Writer    // raft's own log (warnings and errors); nil: stderr
	Now                func() time.Time
	Metrics            *Metrics // nil: none
}

// Node is one running coordinator: raft, the FSM and (while leader) the
// leader loop.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *FSM
	trans *raft.NetworkTransport
	store *checkedStore
	// raftLog is raft's logger, silenced while the node closes: raft
	// reports its own transport closing under it as errors.
	raftLog hclog.Logger
	peers   map[string]Peer

	mu   sync.Mutex
	lead *leaderState // non-nil while this node leads

	peerClient *Client // asks the leader how far it has applied (catchUp)
	// readTerm is the term in which this node, as leader, last applied every
	// entry of earlier terms (a Barrier): until then its FSM may lag the log.
	readTerm atomic.Uint64

	// rejoin: started with no state while the --peers group runs, so it
	// joins (Replace) instead of bootstrapping.
	rejoin bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// Open starts a node. It bootstraps or joins per cfg on first start; a
// restart resumes from the data dir.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coord: open: %w", err)
	}
	if cfg.ID == "" || cfg.RaftAddr == "" || cfg.DataDir == "" {
		return nil, errors.New("coord: ID, RaftAddr and DataDir are required")
	}
	if cfg.WorkerTimeout <= 0 {
		cfg.WorkerTimeout = 3 * time.Second
	}
	if cfg.WorkerGrace <= 0 {
		cfg.WorkerGrace = cfg.WorkerTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RaftLog == nil {
		cfg.RaftLog = os.Stderr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("coord: data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), fsm: NewFSM(), peers: map[string]Peer{}, peerClient: NewClient(nil, cfg.DialOptions...).RedialOnChange(cfg.CredentialsVersion)}
	for _, p := range cfg.Peers {
		n.peers[p.ID] = p
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft-" + cfg.ID, Level: hclog.Warn, Output: cfg.RaftLog})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	n.raftLog = hl
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	} else if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	}
	notify := make(chan bool, 16)
	rc.NotifyCh = notify

	store, err := openLogStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("coord: raft store: %w", err)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("coord: snapshot store: %w", err)
	}
	sl, err := newStreamLayer(cfg.RaftAddr, cfg.RaftTLS)
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("coord: %w", err)
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: 3, Timeout: 5 * time.Second, Logger: hl,
	})
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		n.closeIO()
		return nil, fmt.Errorf("coord: inspect state: %w", err)
	}
	n.raft, err = raft.NewRaft(rc, n.fsm, store, store, snaps, n.trans)
	if err != nil {
		n.closeIO()
		return nil, fmt.Errorf("coord: start raft: %w", err)
	}
	if !existing && len(cfg.Peers) > 0 {
		if evidence, ok := n.groupRunsWithout(context.Background(), 2*time.Second); ok {
			n.rejoin = true
			n.log.Warn("no raft state here but the group already runs: rejoining as a new member instead of bootstrapping",
				"data_dir", cfg.DataDir, "evidence", evidence)
		}
	}
	if !existing && len(cfg.Peers) > 0 && !n.rejoin {
		var servers []raft.Server
		self := false
		for _, p := range cfg.Peers {
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr), Suffrage: raft.Voter})
			self = self || p.ID == cfg.ID
		}
		if !self {
			_ = n.raft.Shutdown().Error()
			n.closeIO()
			return nil, fmt.Errorf("coord: --peers does not list this node's id %q", cfg.ID)
		}
		if err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil &&
			!errors.Is(err, raft.ErrCantBootstrap) {
			_ = n.raft.Shutdown().Error()
			n.closeIO()
			return nil, fmt.Errorf("coord: bootstrap: %w", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.watchLeadership(runCtx, notify)
	}()
	// A wiped node always rejoins: raft may already have replayed the old
	// configuration that lists it as a voter (the leader replicates to
	// its address at once), but that entry has lost its vote and must be
	// replaced. A --join node joins on its first start, or on a restart
	// before the promotion landed.
	if n.rejoin || len(cfg.Peers) == 0 && cfg.Join != "" && !n.isVoter() {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.joinLoop(runCtx)
		}()
	}
	n.log.Info("coordinator node started", "raft", cfg.RaftAddr, "existing_state", existing)
	return n, nil
}

func (n *Node) closeIO() {
	_ = n.peerClient.Close()
	n.trans.CloseStreams() // outbound pooled conns
	_ = n.trans.Close()    // listener and (streamLayer) inbound conns
	_ = n.store.Close()
}

// CatchUp makes a follower's reads reflect every write acknowledged before
// the call: it asks the leader how far it has applied and waits (up to 2 s)
// until this replica has applied as much. When it cannot catch up in time it
// returns a *NotLeaderError naming the leader, so the client re-reads there.
// With no known or reachable leader the local replica answers as it is (a
// status read during an outage is better than none).
func (n *Node) CatchUp(ctx context.Context) error {
	if n.IsLeader() {
		return n.leaderCatchUp(ctx)
	}
	_, addr := n.Leader()
	if addr == "" || addr == n.cfg.GRPCAddr {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := n.peerClient.StatusAt(ctx, addr)
	if err != nil {
		return nil
	}
	for n.raft.AppliedIndex() < st.AppliedIndex {
		if ctx.Err() != nil {
			return n.notLeader()
		}
		_, changed := n.fsm.View()
		t := time.NewTimer(10 * time.Millisecond) // non-command entries advance the index silently
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// leaderCatchUp makes a leader apply the entries of earlier terms before its
// first read in a term. A node that has just won an election may not have
// applied entries the old leader committed: without this, a job submitted just
// before a failover reads as "not found" on the new leader. One Barrier per
// term; a leader that has lost its quorum answers from its replica as it is.
func (n *Node) leaderCatchUp(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.readTerm.Load() == term {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := n.Barrier(ctx); err != nil {
		var nl *NotLeaderError
		if errors.As(err, &nl) {
			return err
		}
		return nil
	}
	n.readTerm.Store(term)
	return nil
}

// QuietRaft turns raft's own log off. A coordinator calls it as soon as it
// is told to stop: when a whole group stops at once, every node's raft sees
// its peers' connections drop and would log those as errors.
func (n *Node) QuietRaft() { n.raftLog.SetLevel(hclog.Off) }

// Close stops the node: the leader loop, the join loop, raft, then storage.
func (n *Node) Close() error {
	var err error
	n.closed.Do(func() {
		n.cancel()
		n.raftLog.SetLevel(hclog.Off)
		if e := n.raft.Shutdown().Error(); e != nil {
			err = fmt.Errorf("coord: raft shutdown: %w", e)
		}
		n.wg.Wait()
		n.closeIO()
	})
	return err
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// FSM exposes the replicated state for reads.
func (n *Node) FSM() *FSM { return n.fsm }

// IsLeader reports whether this node is the raft leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// waitCtx waits d or until ctx ends (a timer, not synchronisation).
func waitCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
