package coord

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/internal/freeport"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// testNode is one coordinator in this test process: real raft over
// loopback TCP, bbolt in a temp dir, a real gRPC server.
type testNode struct {
	id, raftAddr, grpcAddr, dir string
	workerTimeout               time.Duration
	brokenSessionGrace          time.Duration
	raftTLS                     *tls.Config

	node *Node
	gs   *grpc.Server
	done chan struct{}
}

// freeAddr picks a free 127.0.0.1 port below the kernel's ephemeral range,
// claimed for this process (see internal/freeport).
func freeAddr(t testing.TB) string {
	t.Helper()
	as, err := freeport.Addrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return as[0]
}

func newTestNodes(t testing.TB, n int) []*testNode {
	t.Helper()
	var out []*testNode
	for i := 0; i < n; i++ {
		out = append(out, &testNode{
			id: fmt.Sprintf("c%d", i+1), raftAddr: freeAddr(t), grpcAddr: freeAddr(t),
			dir: filepath.Join(t.TempDir(), fmt.Sprintf("c%d", i+1)), workerTimeout: time.Second,
		})
	}
	return out
}

func peersOf(nodes []*testNode) []Peer {
	var ps []Peer
	for _, n := range nodes {
		ps = append(ps, Peer{ID: n.id, RaftAddr: n.raftAddr, GRPCAddr: n.grpcAddr})
	}
	return ps
}

func (tn *testNode) start(t testing.TB, peers []Peer, join string) {
	t.Helper()
	node, err := Open(context.Background(), Config{
		ID: tn.id, RaftAddr: tn.raftAddr, GRPCAddr: tn.grpcAddr, DataDir: tn.dir, Peers: peers, Join: join,
		WorkerTimeout: tn.workerTimeout, BrokenSessionGrace: tn.brokenSessionGrace,
		// Fast enough for short tests, slow enough not to flap on a loaded 2-core CI machine.
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond, LeaderLeaseTimeout: 250 * time.Millisecond,
		RaftTLS: tn.raftTLS,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		RaftLog: io.Discard,
	})
	if err != nil {
		t.Fatalf("start %s: %v", tn.id, err)
	}
	lis, err := net.Listen("tcp", tn.grpcAddr)
	if err != nil {
		_ = node.Close()
		t.Fatalf("listen %s: %v", tn.grpcAddr, err)
	}
	tn.node, tn.gs, tn.done = node, grpc.NewServer(), make(chan struct{})
	NewService(node).Register(tn.gs)
	go func() { // owned by tn: ends on stop
		defer close(tn.done)
		_ = tn.gs.Serve(lis)
	}()
	t.Cleanup(tn.stop)
}

// stop is an abrupt stop: gRPC connections cut, raft shut down.
func (tn *testNode) stop() {
	if tn.node == nil {
		return
	}
	tn.gs.Stop()
	<-tn.done
	_ = tn.node.Close()
	tn.node = nil
}

func grpcAddrs(nodes []*testNode) []string {
	var a []string
	for _, n := range nodes {
		a = append(a, n.grpcAddr)
	}
	return a
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func leaderOf(nodes []*testNode) *testNode {
	for _, n := range nodes {
		if n.node != nil && n.node.leader() != nil {
			return n
		}
	}
	return nil
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fakeWorker registers, keeps a session with the leader (reconnecting
// through redirects) and heartbeats until paused or stopped.
type fakeWorker struct {
	id  string
	cl  *Client
	mu  sync.Mutex
	cur *pb.Assignment

	cancel context.CancelFunc
	done   chan struct{}
}

func startFakeWorker(t testing.TB, addrs []string, id string) *fakeWorker {
	t.Helper()
	w := &fakeWorker{id: id, cl: NewClient(addrs)}
	ctx := ctxT(t, 10*time.Second)
	if _, err := w.cl.RegisterWorker(ctx, &pb.RegisterWorkerRequest{WorkerId: id, Address: id + ".peer:9000", Cores: 2, ProtocolVersion: ProtocolVersion}); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	w.resume(t)
	t.Cleanup(func() { w.pause(); _ = w.cl.Close() })
	return w
}

// resume (re)opens the session and heartbeats, through Client.KeepSession.
func (w *fakeWorker) resume(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() { // owned by w: ends on pause
		defer close(w.done)
		step := int64(0)
		_ = w.cl.KeepSession(ctx, w.id, 100*time.Millisecond, func() *pb.WorkerMessage {
			step++
			return &pb.WorkerMessage{Step: step, Loss: 1, TokensPerSec: 100}
		}, w.set)
	}()
}

func (w *fakeWorker) pause() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
		w.cancel = nil
	}
}

func (w *fakeWorker) set(a *pb.Assignment) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cur = a
}

func (w *fakeWorker) assignment() *pb.Assignment {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

const specYAML = `
name: t
model: {arch: gpt, n_layer: 1, n_head: 2, n_embd: 16, block_size: 8}
data: {task: sort, length: 3, digits: 3}
train: {max_iters: 10, batch_size: 4, learning_rate: 0.001, min_lr: 0.0001, warmup_iters: 1, beta1: 0.9, beta2: 0.95, weight_decay: 0, grad_clip: 1, seed: 1, eval_interval: 0, eval_iters: 1, log_interval: 1}
parallel: {tp: 1, min_workers: 1, max_workers: 0, scale_up: immediate}
checkpoint: {interval: 5, keep: 2}
`

func TestClusterFailover(t *testing.T) {
	nodes := newTestNodes(t, 3)
	for _, n := range nodes {
		n.start(t, peersOf(nodes), "")
	}
	cl := NewClient(grpcAddrs(nodes))
	defer cl.Close()
	job, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(specYAML))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	w1 := startFakeWorker(t, grpcAddrs(nodes), "w1")
	w2 := startFakeWorker(t, grpcAddrs(nodes), "w2")
	var gen uint64
	waitFor(t, "a generation with both workers", 10*time.Second, func() bool {
		a1, a2 := w1.assignment(), w2.assignment()
		if a1.GetGeneration().GetDpSize() == 2 && a1.GetGeneration().GetNumber() == a2.GetGeneration().GetNumber() {
			gen = a1.Generation.Number
			return true
		}
		return false
	})
	// Both DP replicas hold it (checkpoint.replicas defaults to 2).
	for _, w := range []string{"w1", "w2"} {
		if _, err := cl.ReportCheckpoint(ctxT(t, 5*time.Second), &pb.ReportCheckpointRequest{WorkerId: w, JobId: job.Id, Generation: gen, Step: 5}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "checkpoint 5 committed", 5*time.Second, func() bool {
		r, err := cl.GetJob(ctxT(t, 2*time.Second), job.Id)
		return err == nil && r.Job.CommittedStep == 5
	})

	// Kill the leader; another takes over and serves the same state.
	old := leaderOf(nodes)
	if old == nil {
		t.Fatal("no leader")
	}
	old.stop()
	var rest []*testNode
	for _, n := range nodes {
		if n != old {
			rest = append(rest, n)
		}
	}
	waitFor(t, "a new leader", 10*time.Second, func() bool { return leaderOf(rest) != nil })
	if _, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(specYAML)); err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	r, err := cl.GetJob(ctxT(t, 5*time.Second), job.Id)
	if err != nil || r.Job.State != pb.JobState_JOB_STATE_RUNNING || r.Job.CommittedStep != 5 {
		t.Fatalf("job after failover: %v %v", r, err)
	}
	// The new leader gives workers a grace period: after they reconnect, and
	// well past the worker timeout, nobody was declared lost and the
	// generation is the same.
	waitFor(t, "workers on the new leader", 10*time.Second, func() bool {
		nl := leaderOf(rest)
		if nl == nil {
			return false
		}
		l := nl.node.leader()
		if l == nil {
			return false
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.progress["w1"] != nil && l.progress["w2"] != nil
	})
	deadline := time.Now().Add(2 * nodes[0].workerTimeout)
	for time.Now().Before(deadline) {
		ws, err := cl.ListWorkers(ctxT(t, 2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.State != pb.WorkerState_WORKER_STATE_ALIVE {
				t.Fatalf("worker %s declared %v after failover: %s", w.Id, w.State, w.Reason)
			}
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	if r, _ := cl.GetJob(ctxT(t, 2*time.Second), job.Id); r.GetGeneration().GetNumber() != gen {
		t.Fatalf("generation changed across failover: %d → %d", gen, r.GetGeneration().GetNumber())
	}

	// The killed node restarts from its data dir and catches up.
	old.start(t, peersOf(nodes), "")
	waitFor(t, "restarted node catches up", 10*time.Second, func() bool {
		var n int
		old.node.FSM().Read(func(st *pb.ClusterState) { n = len(st.Jobs) })
		return n == 2
	})

	// Kill two of three: writes fail cleanly, nothing is applied.
	w1.pause()
	w2.pause()
	// The leader is the survivor: it must step down rather than accept writes.
	survivor := leaderOf(nodes)
	for _, n := range nodes {
		if n != survivor {
			n.stop()
		}
	}
	noq := NewClient([]string{survivor.grpcAddr})
	defer noq.Close()
	_, err = noq.SubmitJob(ctxT(t, 3*time.Second), []byte(specYAML))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("write without quorum: %v, want Unavailable", err)
	}
	var jobs int
	survivor.node.FSM().Read(func(st *pb.ClusterState) { jobs = len(st.Jobs) })
	if jobs != 2 {
		t.Fatalf("no-quorum write changed state: %d jobs", jobs)
	}
	// Reads still answer from the local replica.
	if _, err := noq.GetJob(ctxT(t, 3*time.Second), job.Id); err != nil {
		t.Fatalf("read without quorum: %v", err)
	}
	// Quorum returns: writes work again.
	for _, n := range nodes {
		if n != survivor {
			n.start(t, peersOf(nodes), "")
			break
		}
	}
	if _, err := cl.SubmitJob(ctxT(t, 15*time.Second), []byte(specYAML)); err != nil {
		t.Fatalf("write after quorum returned: %v", err)
	}
}

func TestJoinAndRemove(t *testing.T) {
	nodes := newTestNodes(t, 3)
	nodes[0].start(t, peersOf(nodes[:1]), "")
	waitFor(t, "single-node leader", 10*time.Second, func() bool { return leaderOf(nodes[:1]) != nil })
	cl := NewClient([]string{nodes[0].grpcAddr})
	defer cl.Close()
	if _, err := cl.SubmitJob(ctxT(t, 5*time.Second), []byte(specYAML)); err != nil {
		t.Fatal(err)
	}
	nodes[1].start(t, nil, nodes[0].grpcAddr)
	nodes[2].start(t, nil, nodes[0].grpcAddr)
	waitFor(t, "three voters", 15*time.Second, func() bool {
		st, err := cl.Status(ctxT(t, 2*time.Second))
		if err != nil {
			return false
		}
		voters := 0
		for _, m := range st.Members {
			if m.Suffrage == "voter" {
				voters++
			}
		}
		return voters == 3
	})
	waitFor(t, "joiners replicate", 10*time.Second, func() bool {
		var n int
		nodes[2].node.FSM().Read(func(st *pb.ClusterState) { n = len(st.Jobs) })
		return n == 1
	})
	// Restart a joined node: no second join, same membership.
	nodes[2].stop()
	nodes[2].start(t, nil, nodes[0].grpcAddr)
	// Remove it as dead.
	nodes[2].stop()
	if err := cl.RemoveCoordinator(ctxT(t, 10*time.Second), nodes[2].id); err != nil {
		t.Fatalf("remove: %v", err)
	}
	st, err := cl.Status(ctxT(t, 2*time.Second))
	if err != nil || len(st.Members) != 2 {
		t.Fatalf("members after remove: %v %v", st, err)
	}
	if err := cl.RemoveCoordinator(ctxT(t, 5*time.Second), "nope"); status.Code(err) != codes.NotFound {
		t.Fatalf("remove unknown: %v", err)
	}
	// Two nodes remain a working group.
	if _, err := cl.SubmitJob(ctxT(t, 5*time.Second), []byte(specYAML)); err != nil {
		t.Fatal(err)
	}
}

// TestFiveNodes: a 5-node group keeps writing with 2 nodes down and stops
// (cleanly) with 3 down.
func TestFiveNodes(t *testing.T) {
	nodes := newTestNodes(t, 5)
	for _, n := range nodes {
		n.workerTimeout = time.Minute
		n.start(t, peersOf(nodes), "")
	}
	cl := NewClient(grpcAddrs(nodes))
	defer cl.Close()
	if _, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(specYAML)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a leader", 10*time.Second, func() bool { return leaderOf(nodes) != nil })
	leaderOf(nodes).stop()
	for _, n := range nodes {
		if n.node != nil {
			n.stop()
			break
		}
	}
	// With 3 of 5 the group must accept a write. An election racing the
	// first attempt may abort it with "outcome unknown" (never a false
	// success); the group must still accept one within the deadline.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := cl.SubmitJob(ctxT(t, 10*time.Second), []byte(specYAML))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write with 3 of 5: %v", err)
		}
		t.Logf("write with 3 of 5 not accepted yet: %v", err)
		time.Sleep(200 * time.Millisecond) // retry interval, not synchronisation
	}
	for _, n := range nodes {
		if n.node != nil {
			n.stop()
			break
		}
	}
	var live []string
	for _, n := range nodes {
		if n.node != nil {
			live = append(live, n.grpcAddr)
		}
	}
	two := NewClient(live)
	defer two.Close()
	if _, err := two.SubmitJob(ctxT(t, 2*time.Second), []byte(specYAML)); status.Code(err) != codes.Unavailable {
		t.Fatalf("write with 2 of 5: %v, want Unavailable", err)
	}
}
