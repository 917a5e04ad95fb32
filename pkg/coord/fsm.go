package coord

import (
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// FSM adapts Store to raft.FSM and lets readers wait for changes.
type FSM struct {
	mu      sync.RWMutex
	store   *Store
	changed chan struct{} // closed and replaced on every successful change
}

// NewFSM returns an FSM over an empty store.
func NewFSM() *FSM { return &FSM{store: NewStore(), changed: make(chan struct{})} }

// ApplyResult is what FSM.Apply returns through raft's ApplyFuture.Response.
type ApplyResult struct {
	Msg proto.Message
	Err error
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c pb.Command
	if err := proto.Unmarshal(l.Data, &c); err != nil {
		return ApplyResult{Err: fmt.Errorf("%w: decode: %v", ErrInvalidCommand, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	msg, err := f.store.Apply(&c)
	if err == nil {
		if msg != nil {
			msg = proto.Clone(msg)
		}
		close(f.changed)
		f.changed = make(chan struct{})
	}
	return ApplyResult{Msg: msg, Err: err}
}

// Read runs fn with the state under a read lock; fn must not keep or modify it.
func (f *FSM) Read(fn func(st *pb.ClusterState)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	fn(f.store.State())
}

// View returns a deep copy of the state and a channel closed on the next change.
func (f *FSM) View() (*pb.ClusterState, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.store.Clone(), f.changed
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := f.store.Marshal()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return fsmSnapshot(b), nil
}

// Restore implements raft.FSM: it discards the current state.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("restore: read: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.store.Reset(b); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

type fsmSnapshot []byte

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}
