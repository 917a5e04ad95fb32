package coord

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

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
