package coord

import (
	"context"
	"errors"
	"fmt"
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
	unreachable peerReports     // who could not reach whom, in the current generations
	leaving     map[string]bool // workers that said goodbye
	// workers taken out for a cut link: not revived by their heartbeats
	// until then, so that a job does not take back a worker its peers still
	// cannot reach (each repeat doubles the wait)
	cutOff   map[string]cutOff
	sessions map[string]int  // open session streams per worker
	suspects map[string]bool // workers whose last session broke
	progress map[string]*pb.WorkerMessage
	heard    map[string]time.Time // last heartbeat of each worker (heartbeat age metrics)
	kick     chan struct{}
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
				cutOff:      map[string]cutOff{},
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
	l.unreachable.prune(st, now)
	for _, x := range l.unreachable.exclude() {
		if !slices.ContainsFunc(lost, func(y loss) bool { return y.id == x.id }) {
			lost = append(lost, x)
			l.quarantine(x.id, now, max(5*time.Second, 2*n.cfg.WorkerTimeout))
		}
	}
	ready, diverged := l.ckpt.Ready(st)
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
	for _, d := range diverged {
		n.log.Error("checkpoint refused: replicas diverged", "job", d.Job, "step", d.Step, "tp", d.TP, "reason", d.Reason)
		if n.cfg.Metrics != nil {
			n.cfg.Metrics.ckptDiverged.Inc()
		}
		if err := apply(&pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
			JobId: d.Job, State: pb.JobState_JOB_STATE_FAILED, Reason: d.Reason}}}); err != nil {
			errs = append(errs, fmt.Errorf("fail diverged job %s: %w", d.Job, err))
		}
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
		l.unreachable.add(m.WorkerId, p, m.Generation, now)
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
	if n.cfg.BrokenSessionGrace > 0 {
		return min(n.cfg.WorkerTimeout, n.cfg.BrokenSessionGrace)
	}
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
// it, about which generation and when: target → reporter → report.
type peerReports map[string]map[string]peerReport

type peerReport struct {
	generation uint64
	at         time.Time
}

// peerReportTTL bounds how long a report waits for the other end's.
const peerReportTTL = time.Minute

func (r peerReports) add(reporter, target string, generation uint64, now time.Time) {
	if r[target] == nil {
		r[target] = map[string]peerReport{}
	}
	r[target][reporter] = peerReport{generation, now}
}

// prune drops the reports that no longer count: from or about a worker not
// alive, from a worker whose job runs another generation now, or older than
// peerReportTTL.
func (r peerReports) prune(st *pb.ClusterState, now time.Time) {
	alive := func(id string) bool {
		w := st.Workers[id]
		return w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE
	}
	for target, by := range r {
		for reporter, rep := range by {
			w := st.Workers[reporter]
			current := alive(reporter) && w.JobId != "" && st.Jobs[w.JobId] != nil && st.Jobs[w.JobId].Generation == rep.generation
			if !alive(target) || !current || now.Sub(rep.at) > peerReportTTL {
				delete(by, reporter)
			}
		}
		if len(by) == 0 {
			delete(r, target)
		}
	}
}

// exclude decides which workers to take out of their jobs for the reports
// (pruned first). A report is evidence about a link, not a verdict on its
// target: a crashed or paused worker is found by its session and heartbeats,
// and a collective failure cascades along the ring, so a one-sided report
// proves nothing. A link reported from both ends is cut while both ends
// still reach the coordinators: the workers take turns leaving, the one with
// the most cut links first (ties by id), until no cut link joins two that
// stay. One worker cut off from the rest goes alone, and the rest train on.
func (r peerReports) exclude() []loss {
	cuts := map[string][]string{} // worker → the other ends of its cut links
	for target, by := range r {
		for reporter := range by {
			if _, back := r[reporter][target]; back && target < reporter {
				cuts[target] = append(cuts[target], reporter)
				cuts[reporter] = append(cuts[reporter], target)
			}
		}
	}
	out := []loss{}
	taken := map[string]bool{}
	for {
		best, degree := "", 0
		for id, others := range cuts {
			if taken[id] {
				continue
			}
			d := 0
			for _, o := range others {
				if !taken[o] {
					d++
				}
			}
			if d > degree || (d == degree && d > 0 && id < best) {
				best, degree = id, d
			}
		}
		if degree == 0 {
			return out
		}
		taken[best] = true
		var peers []string
		for _, o := range cuts[best] {
			if !taken[o] {
				peers = append(peers, o)
			}
		}
		slices.Sort(peers)
		out = append(out, loss{best, "cut off from peers " + strings.Join(peers, ", ") + " (each end reported the other unreachable)"})
	}
}

type cutOff struct {
	until time.Time
	wait  time.Duration
}

// quarantine holds id out after it was cut off from its peers: first for
// base, doubling with each repeat
// up to 5 minutes (starting over once it has been back 10 minutes).
func (l *leaderState) quarantine(id string, now time.Time, base time.Duration) {
	q := l.cutOff[id]
	switch {
	case q.wait == 0 || now.Sub(q.until) > 10*time.Minute:
		q.wait = base
	default:
		q.wait = min(2*q.wait, 5*time.Minute)
	}
	q.until = now.Add(q.wait)
	l.cutOff[id] = q
}

// cutOffUntil reports until when the leader holds worker id out for a cut
// link (false: it does not).
func (n *Node) cutOffUntil(id string) (time.Time, bool) {
	l := n.leader()
	if l == nil {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q, ok := l.cutOff[id]
	return q.until, ok && n.cfg.Now().Before(q.until)
}
