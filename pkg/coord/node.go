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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Peer is one member of a statically bootstrapped coordinator group.
type Peer struct {
	ID       string
	RaftAddr string
	GRPCAddr string
}

// ParsePeers parses "id=raftaddr=grpcaddr,..." (the --peers flag).
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		f := strings.Split(item, "=")
		if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
			return nil, fmt.Errorf("peer %q: want id=raftaddr=grpcaddr", item)
		}
		out = append(out, Peer{ID: f[0], RaftAddr: f[1], GRPCAddr: f[2]})
	}
	return out, nil
}

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

	// Raft timing; zero keeps hashicorp/raft's defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration

	RaftTLS *tls.Config  // nil: plain TCP (the mTLS seam)
	Logger  *slog.Logger // nil: slog.Default()
	RaftLog io.Writer    // raft's own log (warnings and errors); nil: stderr
	Now     func() time.Time
	Metrics *Metrics // nil: none
}

// Node is one running coordinator: raft, the FSM and (while leader) the
// leader loop.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	fsm   *FSM
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	peers map[string]Peer

	mu   sync.Mutex
	lead *leaderState // non-nil while this node leads

	peerClient *Client // asks the leader how far it has applied (catchUp)

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
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.ID), fsm: NewFSM(), peers: map[string]Peer{}, peerClient: NewClient(nil)}
	for _, p := range cfg.Peers {
		n.peers[p.ID] = p
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft-" + cfg.ID, Level: hclog.Warn, Output: cfg.RaftLog})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
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

	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("coord: open raft store: %w", err)
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
	if len(cfg.Peers) == 0 && cfg.Join != "" && !n.isVoter() {
		// First start, or a restart before the promotion landed.
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
		return nil
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

// Close stops the node: the leader loop, the join loop, raft, then storage.
func (n *Node) Close() error {
	var err error
	n.closed.Do(func() {
		n.cancel()
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

// NotLeaderError says who the leader is (if known). errors.Is(err,
// ErrNotLeader) holds; when no leader is known it also matches ErrNoQuorum.
type NotLeaderError struct {
	LeaderID   string
	LeaderGRPC string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == "" {
		return "not the leader and no leader is known (no quorum?)"
	}
	return fmt.Sprintf("not the leader; leader is %s at %s", e.LeaderID, e.LeaderGRPC)
}

// Is matches ErrNotLeader, and ErrNoQuorum when no leader is known.
func (e *NotLeaderError) Is(target error) bool {
	return target == ErrNotLeader || (target == ErrNoQuorum && e.LeaderID == "")
}

// Leader returns the current leader's id and gRPC address ("" if unknown).
func (n *Node) Leader() (id, grpcAddr string) {
	_, lid := n.raft.LeaderWithID()
	id = string(lid)
	if id == "" {
		return "", ""
	}
	return id, n.grpcAddrOf(id)
}

func (n *Node) grpcAddrOf(id string) string {
	var addr string
	n.fsm.Read(func(st *pb.ClusterState) { addr = st.Coordinators[id].GetGrpcAddress() })
	if addr == "" {
		addr = n.peers[id].GRPCAddr
	}
	if addr == "" && id == n.cfg.ID {
		addr = n.cfg.GRPCAddr
	}
	return addr
}

func (n *Node) notLeader() error {
	id, addr := n.Leader()
	if id == n.cfg.ID {
		id, addr = "", ""
	}
	return &NotLeaderError{LeaderID: id, LeaderGRPC: addr}
}

// Apply commits one command through raft and returns what the FSM made of
// it. Errors: *NotLeaderError (not applied), ErrNoQuorum wrapped with
// ErrOutcomeUnknown when leadership was lost or ctx ended before the commit,
// or the FSM's own error (state unchanged).
func (n *Node) Apply(ctx context.Context, c *pb.Command) (proto.Message, error) {
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	c.UnixMs = n.cfg.Now().UnixMilli()
	b, err := proto.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("coord: encode command: %w", err)
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft.Apply(b, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends when raft resolves the future (commit, loss or shutdown)
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("coord: %w: %w: %w", ErrNoQuorum, ErrOutcomeUnknown, ctx.Err())
	case err = <-done:
	}
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader):
		return nil, n.notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return nil, fmt.Errorf("coord: %w: %v", ErrNoQuorum, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return nil, fmt.Errorf("coord: %w: %w: %v", ErrNoQuorum, ErrOutcomeUnknown, err)
	default:
		return nil, fmt.Errorf("coord: apply: %w", err)
	}
	res, ok := f.Response().(ApplyResult)
	if !ok {
		return nil, fmt.Errorf("coord: unexpected apply response %T", f.Response())
	}
	if n.cfg.Metrics != nil {
		n.cfg.Metrics.commands.WithLabelValues(commandName(c), strconv.FormatBool(res.Err == nil)).Inc()
	}
	return res.Msg, res.Err
}

func commandName(c *pb.Command) string {
	name := fmt.Sprintf("%T", c.GetCmd())
	return strings.TrimPrefix(name, "*ringmasterv1.Command_")
}

// Snapshot takes a raft snapshot now (the log up to it can then be
// compacted). Raft also snapshots on its own schedule.
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("coord: snapshot: %w", err)
	}
	return nil
}

// Barrier waits until every committed entry is applied locally.
func (n *Node) Barrier(ctx context.Context) error {
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := n.raft.Barrier(timeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return n.notLeader()
		}
		return fmt.Errorf("coord: barrier: %w: %v", ErrNoQuorum, err)
	}
	return nil
}

// Status describes this node and the group as it sees it.
func (n *Node) Status() *pb.StatusResponse {
	lid, laddr := n.Leader()
	out := &pb.StatusResponse{
		NodeId: n.cfg.ID, RaftState: n.raft.State().String(), LeaderId: lid, LeaderGrpcAddress: laddr,
		AppliedIndex: n.raft.AppliedIndex(), LastIndex: n.raft.LastIndex(),
	}
	out.Term, _ = strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			out.Members = append(out.Members, &pb.Member{
				Id: string(s.ID), RaftAddress: string(s.Address), GrpcAddress: n.grpcAddrOf(string(s.ID)),
				Suffrage: strings.ToLower(s.Suffrage.String()), Leader: string(s.ID) == lid,
			})
		}
	}
	return out
}

// AddMember adds a coordinator: as a non-voter first; with promote (the
// joiner has caught up) as a voter. Idempotent. Leader only.
func (n *Node) AddMember(ctx context.Context, req *pb.JoinCoordinatorRequest) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, n.notLeader()
	}
	if req.GetId() == "" || req.GetRaftAddress() == "" || req.GetGrpcAddress() == "" {
		return 0, fmt.Errorf("%w: join needs id, raft address and grpc address", ErrInvalidCommand)
	}
	if _, err := n.Apply(ctx, &pb.Command{Cmd: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{
		Coordinator: &pb.CoordinatorInfo{Id: req.Id, RaftAddress: req.RaftAddress, GrpcAddress: req.GrpcAddress}}}}); err != nil {
		return 0, err
	}
	var f raft.IndexFuture
	if req.Promote {
		f = n.raft.AddVoter(raft.ServerID(req.Id), raft.ServerAddress(req.RaftAddress), 0, 5*time.Second)
	} else {
		if cf := n.raft.GetConfiguration(); cf.Error() == nil {
			for _, s := range cf.Configuration().Servers {
				if string(s.ID) == req.Id && string(s.Address) == req.RaftAddress {
					return n.raft.LastIndex(), nil // already a member (voter or not)
				}
			}
		}
		f = n.raft.AddNonvoter(raft.ServerID(req.Id), raft.ServerAddress(req.RaftAddress), 0, 5*time.Second)
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, n.notLeader()
		}
		return 0, fmt.Errorf("coord: add member %s: %w: %v", req.Id, ErrNoQuorum, err)
	}
	n.log.Info("coordinator member added", "id", req.Id, "voter", req.Promote)
	return n.raft.LastIndex(), nil
}

// RemoveMember removes a coordinator from the group. Leader only.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	if n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	found := false
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			found = found || string(s.ID) == id
		}
	}
	if !found {
		return fmt.Errorf("%w: %q", ErrCoordinatorAbsent, id)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return n.notLeader()
		}
		return fmt.Errorf("coord: remove member %s: %w: %v", id, ErrNoQuorum, err)
	}
	_, err := n.Apply(ctx, &pb.Command{Cmd: &pb.Command_RemoveCoordinator{RemoveCoordinator: &pb.RemoveCoordinatorCmd{Id: id}}})
	if err != nil && !errors.Is(err, ErrCoordinatorAbsent) {
		return err
	}
	return nil
}

func (n *Node) isVoter() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.cfg.ID {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}

// joinLoop asks the group (through cfg.Join) to add this node, waits to
// catch up, then asks to be promoted to voter. It retries until done or ctx
// ends.
func (n *Node) joinLoop(ctx context.Context) {
	cl := NewClient([]string{n.cfg.Join})
	defer cl.Close()
	req := &pb.JoinCoordinatorRequest{Id: n.cfg.ID, RaftAddress: n.cfg.RaftAddr, GrpcAddress: n.cfg.GRPCAddr}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		target, err := cl.Join(ctx, req)
		if err == nil && !req.Promote && n.isVoter() {
			return // already promoted (a restart)
		}
		if err == nil && !req.Promote {
			// Wait until our log has caught up with the leader's at join time.
			for ctx.Err() == nil && n.raft.AppliedIndex() < target {
				waitCtx(ctx, 50*time.Millisecond)
			}
			req.Promote = true
			continue
		}
		if err == nil {
			n.log.Info("joined coordinator group as voter")
			return
		}
		n.log.Warn("join failed; retrying", "via", n.cfg.Join, "err", err)
		waitCtx(ctx, backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// waitCtx waits d or until ctx ends (a timer, not synchronisation).
func waitCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
