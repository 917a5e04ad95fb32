package coord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

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
	if req.Replace && !req.Promote {
		if err := n.dropStaleVoter(req.Id); err != nil {
			return 0, err
		}
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

// dropStaleVoter removes id from the raft configuration when it is listed
// there as a voter: the joiner says it lost its state, and a voter that
// forgot which candidate it voted for in a term could elect a second leader
// in that term. A non-voter entry is harmless and stays (a retried join).
func (n *Node) dropStaleVoter(id string) error {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("coord: read configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		if string(s.ID) != id || s.Suffrage != raft.Voter {
			continue
		}
		if err := n.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			if errors.Is(err, raft.ErrNotLeader) {
				return n.notLeader()
			}
			return fmt.Errorf("coord: remove %s's stale membership: %w: %v", id, ErrNoQuorum, err)
		}
		n.log.Warn("coordinator rejoins without its state: its old voter entry is removed until it catches up", "id", id)
	}
	return nil
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
	via := []string{n.cfg.Join}
	if n.rejoin {
		via = n.otherPeerAddrs()
	}
	cl := NewClient(via, n.cfg.DialOptions...).RedialOnChange(n.cfg.CredentialsVersion)
	defer cl.Close()
	req := &pb.JoinCoordinatorRequest{Id: n.cfg.ID, RaftAddress: n.cfg.RaftAddr, GrpcAddress: n.cfg.GRPCAddr, Replace: n.rejoin}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		target, err := cl.Join(ctx, req)
		// A restart with its state finds itself a voter already. A wiped
		// node must not take that shortcut: while it catches up it replays
		// the old configuration that still lists it as a voter, although
		// the leader has just removed that entry (Replace).
		if err == nil && !req.Promote && !req.Replace && n.isVoter() {
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
		n.log.Warn("join failed; retrying", "via", via, "err", err)
		waitCtx(ctx, backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (n *Node) otherPeerAddrs() []string {
	var out []string
	for _, p := range n.cfg.Peers {
		if p.ID != n.cfg.ID {
			out = append(out, p.GRPCAddr)
		}
	}
	return out
}

// groupRunsWithout reports whether the other --peers already run a group
// that has had a leader. A node that starts with no raft state while they do
// has lost its data dir (or was wiped on purpose): it must not bootstrap a
// log of its own, but rejoin as a new member. Peers that do not answer (they
// are starting too) or hold only the bootstrap entry mean a new group.
func (n *Node) groupRunsWithout(ctx context.Context, timeout time.Duration) (evidence string, ok bool) {
	addrs := n.otherPeerAddrs()
	cl := NewClient(addrs, n.cfg.DialOptions...).RedialOnChange(n.cfg.CredentialsVersion)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	found := make(chan string, len(addrs))
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := cl.StatusAt(ctx, a)
			switch {
			case err != nil:
			case st.GetLeaderId() != "" && st.GetLeaderId() != n.cfg.ID:
				found <- fmt.Sprintf("%s reports leader %s", a, st.GetLeaderId())
			case st.GetLastIndex() > 1: // a leader's first entry follows the bootstrap configuration
				found <- fmt.Sprintf("%s holds log index %d", a, st.GetLastIndex())
			}
		}()
	}
	wg.Wait()
	close(found)
	for e := range found {
		return e, true
	}
	return "", false
}
