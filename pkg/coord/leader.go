package coord

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// leaderState is soft state that lives only on the leader and only for one
// term: heartbeat clocks, latest progress, pending checkpoint reports. A new
// leader builds it from scratch, with a grace period for every worker.
type leaderState struct {
	mu          sync.Mutex
	det         *Detector
	ckpt        *CheckpointTracker
	unreachable peerReports     // who could not reach whom, since the last step
	leaving     map[string]bool // workers that said goodbye
	sessions    map[string]int  // open session streams per worker
	suspects    map[string]bool // workers whose last session broke
	progress    map[string]*pb.WorkerMessage
	heard       map[string]time.Time // last heartbeat of each worker (heartbeat age metrics)
	kick        chan struct{}
}

func (l *leaderState) poke() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// watchLeadership starts the leader loop on gaining leadership and stops it
// on losing it.
func (n *Node) watchLeadership(ctx context.Context, notify <-chan bool) {
	var stop context.CancelFunc
	var loop sync.WaitGroup
	end := func() {
		if stop != nil {
			stop()
			loop.Wait()
			stop = nil
		}
		n.mu.Lock()
		n.lead = nil
		n.mu.Unlock()
		if n.cfg.Metrics != nil {
			n.cfg.Metrics.isLeader.Set(0)
		}
	}
	defer end()
	for {
		select {
		case <-ctx.Done():
			return
		case isLeader := <-notify:
			end()
			if !isLeader {
				n.log.Info("lost leadership")
				continue
			}
			n.log.Info("became leader")
			if n.cfg.Metrics != nil {
				n.cfg.Metrics.isLeader.Set(1)
			}
			l := &leaderState{
				det:         NewDetector(n.cfg.WorkerTimeout, n.cfg.WorkerGrace),
				ckpt:        NewCheckpointTracker(),
				unreachable: peerReports{},
				leaving:     map[string]bool{},
				sessions:    map[string]int{},
				suspects:    map[string]bool{},
				progress:    map[string]*pb.WorkerMessage{},
				heard:       map[string]time.Time{},
				kick:        make(chan struct{}, 1),
			}
			lctx, cancel := context.WithCancel(ctx)
			stop = cancel
			loop.Add(1)
			go func() {
				defer loop.Done()
				n.leaderLoop(lctx, l)
			}()
		}
	}
}

func (n *Node) leaderLoop(ctx context.Context, l *leaderState) {
	// Apply everything committed by earlier terms before acting on the state.
	for ctx.Err() == nil {
		bctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.Barrier(bctx)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotLeader) {
			return
		}
		waitCtx(ctx, 100*time.Millisecond)
	}
	if ctx.Err() != nil {
		return
	}
	st, _ := n.fsm.View()
	var alive []string
	for id, w := range st.Workers {
		if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
			alive = append(alive, id)
		}
	}
	l.mu.Lock()
	l.det.Reset(n.cfg.Now(), alive)
	l.mu.Unlock()
	n.mu.Lock()
	n.lead = l
	n.mu.Unlock()
	n.registerSelf(ctx, st)

	tick := min(n.cfg.WorkerTimeout/4, 250*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		st, changed := n.fsm.View()
		if err := n.leaderStep(ctx, l, st); err != nil && ctx.Err() == nil {
			n.log.Warn("leader step", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		case <-l.kick:
		}
	}
}

// registerSelf records this node's (and statically known peers') gRPC
// addresses in the replicated state so followers can redirect to us.
func (n *Node) registerSelf(ctx context.Context, st *pb.ClusterState) {
	want := []*pb.CoordinatorInfo{{Id: n.cfg.ID, RaftAddress: n.cfg.RaftAddr, GrpcAddress: n.cfg.GRPCAddr}}
	for _, p := range n.cfg.Peers {
		if p.ID != n.cfg.ID {
			want = append(want, &pb.CoordinatorInfo{Id: p.ID, RaftAddress: p.RaftAddr, GrpcAddress: p.GRPCAddr})
		}
	}
	for i, ci := range want {
		have := st.Coordinators[ci.Id]
		if have != nil && (i > 0 || (have.GrpcAddress == ci.GrpcAddress && have.RaftAddress == ci.RaftAddress)) {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := n.Apply(actx, &pb.Command{Cmd: &pb.Command_SetCoordinator{SetCoordinator: &pb.SetCoordinatorCmd{Coordinator: ci}}}); err != nil {
			n.log.Warn("record coordinator address", "id", ci.Id, "err", err)
		}
		cancel()
	}
}

// leaderStep runs the failure detector, checkpoint commits and the
// scheduler once against st, committing what they propose.
func (n *Node) leaderStep(ctx context.Context, l *leaderState, st *pb.ClusterState) error {
	now := n.cfg.Now()
	l.mu.Lock()
	for id, w := range st.Workers {
		if w.State == pb.WorkerState_WORKER_STATE_ALIVE {
			l.det.Watch(now, id)
		} else {
			l.det.Forget(id)
			delete(l.heard, id)
		}
	}
	var lost []loss
	for _, id := range l.det.Expired(now) {
		reason := fmt.Sprintf("no heartbeat for %s", n.cfg.WorkerTimeout)
		if l.suspects[id] {
			reason = fmt.Sprintf("session broke and was not reopened within %s", n.brokenSessionGrace())
		}
		lost = append(lost, loss{id, reason})
	}
	for id := range l.leaving {
		if w := st.Workers[id]; w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE {
			lost = append(lost, loss{id, "left: shutting down"})
		}
	}
	clear(l.leaving)
	for _, x := range l.unreachable.exclude(st) {
		if !slices.ContainsFunc(lost, func(y loss) bool { return y.id == x.id }) {
			lost = append(lost, loss{x.id, x.reason})
		}
	}
	clear(l.unreachable)
	ready := l.ckpt.Ready(st)
	l.mu.Unlock()

	apply := func(c *pb.Command) error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := n.Apply(actx, c)
		return err
	}
	var errs []error
	for _, x := range lost {
		err := apply(&pb.Command{Cmd: &pb.Command_SetWorkerState{SetWorkerState: &pb.SetWorkerStateCmd{
			WorkerId: x.id, State: pb.WorkerState_WORKER_STATE_LOST, Reason: x.reason}}})
		if err != nil {
			errs = append(errs, fmt.Errorf("mark %s lost: %w", x.id, err))
			continue
		}
		n.log.Warn("worker lost", "worker", x.id, "reason", x.reason)
		if n.cfg.Metrics != nil {
			n.cfg.Metrics.workersLost.Inc()
		}
		l.mu.Lock()
		l.det.Forget(x.id)
		delete(l.suspects, x.id)
		l.mu.Unlock()
	}
	if len(lost) > 0 {
		return errors.Join(errs...) // re-plan on the new state
	}
	for _, ck := range ready {
		if err := apply(&pb.Command{Cmd: &pb.Command_CommitCheckpoint{CommitCheckpoint: &pb.CommitCheckpointCmd{Checkpoint: ck}}}); err != nil {
			errs = append(errs, fmt.Errorf("commit checkpoint %s@%d: %w", ck.JobId, ck.Step, err))
			continue
		}
		n.log.Info("checkpoint committed", "job", ck.JobId, "step", ck.Step)
	}
	if len(ready) > 0 {
		return errors.Join(errs...)
	}
	expired := WaitExpired(st, now)
	for _, c := range expired {
		sc := c.GetSetJobState()
		if err := apply(c); err != nil {
			errs = append(errs, fmt.Errorf("fail job %s past its wait_timeout: %w", sc.JobId, err))
			continue
		}
		n.log.Warn("job failed: waited past parallel.wait_timeout", "job", sc.JobId, "reason", sc.Reason)
	}
	if len(expired) > 0 {
		return errors.Join(errs...) // re-plan on the new state
	}
	for _, c := range Plan(st) {
		if err := apply(c); err != nil {
			return errors.Join(append(errs, fmt.Errorf("scheduler: %w", err))...)
		}
		if g := c.GetCommitGeneration().GetGeneration(); g != nil {
			n.log.Info("generation committed", "job", g.JobId, "reason", g.Reason, "dp", g.DpSize, "tp", g.TpSize)
			if n.cfg.Metrics != nil {
				n.cfg.Metrics.generations.Inc()
			}
		}
	}
	return errors.Join(errs...)
}

func (n *Node) leader() *leaderState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lead
}

// Heartbeat feeds one worker message to the leader's soft state.
func (n *Node) Heartbeat(m *pb.WorkerMessage) error {
	l := n.leader()
	if l == nil {
		return n.notLeader()
	}
	if n.cfg.Metrics != nil {
		n.cfg.Metrics.heartbeats.Inc()
	}
	l.mu.Lock()
	now := n.cfg.Now()
	l.det.Heartbeat(now, m.WorkerId)
	l.progress[m.WorkerId] = m
	l.heard[m.WorkerId] = now
	for _, p := range m.UnreachablePeers {
		l.unreachable.add(m.WorkerId, p, m.Generation)
	}
	if m.Leaving {
		l.leaving[m.WorkerId] = true
	}
	l.mu.Unlock()
	if len(m.UnreachablePeers) > 0 || m.Leaving {
		l.poke()
	}
	return nil
}

// brokenSessionGrace is how long a worker whose session stream broke (no
// goodbye: the process died, its sockets were reset) has to reopen one
// before it is declared lost. A live worker reopens at once (its first
// attempt has no backoff); a SIGKILLed one never does, and waiting the full
// heartbeat timeout for it was most of a recovery (issue 12).
func (n *Node) brokenSessionGrace() time.Duration {
	return min(n.cfg.WorkerTimeout, 300*time.Millisecond)
}

// sessionOpened counts an open session stream of worker id.
func (n *Node) sessionOpened(id string) {
	l := n.leader()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.sessions[id]++
	delete(l.suspects, id)
	l.mu.Unlock()
}

// sessionClosed counts a session stream of worker id gone. When it broke
// (not a clean end) and it was the worker's last one, the worker becomes a
// suspect: lost unless it reopens within brokenSessionGrace.
func (n *Node) sessionClosed(id string, broken bool) {
	l := n.leader()
	if l == nil {
		return
	}
	l.mu.Lock()
	l.sessions[id]--
	if l.sessions[id] <= 0 {
		delete(l.sessions, id)
		if broken && l.det.Watching(id) {
			l.suspects[id] = true
			l.det.Suspect(n.cfg.Now(), id, n.brokenSessionGrace())
		}
	}
	l.mu.Unlock()
	if broken {
		// Wake the leader loop when the window ends, not at its next tick.
		time.AfterFunc(n.brokenSessionGrace(), l.poke)
	}
}

// Progress returns the latest heartbeat of each rank's worker, by rank (nil
// entries for workers not heard from). Only the leader has heartbeats; other
// nodes return nil.
func (n *Node) Progress(ranks []*pb.Rank) []*pb.WorkerMessage {
	l := n.leader()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*pb.WorkerMessage, len(ranks))
	for i, r := range ranks {
		if m := l.progress[r.WorkerId]; m != nil {
			out[i] = proto.Clone(m).(*pb.WorkerMessage)
		} else {
			out[i] = &pb.WorkerMessage{WorkerId: r.WorkerId}
		}
	}
	return out
}

// ReportCheckpoint records a durable shard and says whether the step is
// now committed (it may commit a moment later through the leader loop).
func (n *Node) ReportCheckpoint(ctx context.Context, r *pb.ReportCheckpointRequest) (bool, error) {
	l := n.leader()
	if l == nil {
		return false, n.notLeader()
	}
	var known, alive bool
	var last int64 = -1
	n.fsm.Read(func(st *pb.ClusterState) {
		j := st.Jobs[r.JobId]
		known = j != nil && !Terminal(j.State)
		w := st.Workers[r.WorkerId]
		alive = w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE
		if ck := LatestCheckpoint(st, r.JobId); ck != nil {
			last = ck.Step
		}
	})
	switch {
	case !known:
		return false, fmt.Errorf("%w: %q (or finished)", ErrJobNotFound, r.JobId)
	case !alive:
		return false, fmt.Errorf("%w: %q is not a live worker", ErrWorkerNotFound, r.WorkerId)
	case r.Step <= last:
		return r.Step == last, nil
	}
	l.mu.Lock()
	l.ckpt.Report(r)
	l.mu.Unlock()
	l.poke()
	return false, nil
}

type loss struct{ id, reason string }

// peerReports holds, for each worker a peer could not reach, who reported
// it and in which generation: target → reporter → generation.
type peerReports map[string]map[string]uint64

func (r peerReports) add(reporter, target string, generation uint64) {
	if r[target] == nil {
		r[target] = map[string]uint64{}
	}
	r[target][reporter] = generation
}

// exclude decides which workers to take out of their jobs for the reports.
// A report is evidence about a link, not a verdict on its target: when a
// worker is cut off from its peers but not from the coordinators, both ends
// of every cut link report the other, and taking out every reported worker
// would empty the job. So only reports from an alive worker about the
// generation its job runs now count (a report from an earlier generation,
// or from a worker already taken out, says nothing about this one), and
// workers are taken out most-reported first (ties by id) until every
// counted report came from a worker already taken out. A crashed peer is
// reported by its neighbours alone and goes at once, as before; one worker
// cut off from the rest goes, and the rest keep training.
func (r peerReports) exclude(st *pb.ClusterState) []loss {
	alive := func(id string) bool {
		w := st.Workers[id]
		return w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE
	}
	counted := map[string][]string{} // target → reporters that count
	for target, by := range r {
		if !alive(target) {
			continue
		}
		for reporter, gen := range by {
			w := st.Workers[reporter]
			if !alive(reporter) || w.JobId == "" {
				continue
			}
			if j := st.Jobs[w.JobId]; j == nil || (gen != 0 && j.Generation != gen) {
				continue
			}
			counted[target] = append(counted[target], reporter)
		}
	}
	targets := slices.Collect(maps.Keys(counted))
	slices.SortFunc(targets, func(a, b string) int {
		if c := cmp.Compare(len(counted[b]), len(counted[a])); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := []loss{}
	taken := map[string]bool{}
	for _, target := range targets {
		var by []string
		for _, reporter := range counted[target] {
			if !taken[reporter] {
				by = append(by, reporter)
			}
		}
		if len(by) == 0 {
			continue
		}
		slices.Sort(by)
		taken[target] = true
		out = append(out, loss{target, "reported unreachable by " + strings.Join(by, ", ")})
	}
	return out
}
