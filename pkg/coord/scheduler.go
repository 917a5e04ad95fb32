package coord

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/parallel"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Plan is the scheduler: a pure function from the cluster state to the
// commands that bring it to the desired layout. It reads no clock and does
// no I/O; the leader commits what it returns through Raft and calls it again
// on the new state. On a settled state it returns nothing.
//
// Policy:
//   - Active jobs (queued, waiting, running) are served FIFO by submission.
//     A job that cannot reach min_workers waits, and jobs behind it wait too.
//   - A running job that lost a worker gets a new generation from its live
//     workers plus free ones; below min_workers it goes to waiting and frees
//     its workers.
//   - A running job takes in free workers (elastic scale up) immediately when
//     its spec says scale_up: immediate, else once a checkpoint newer than its
//     generation's resume step is committed (the next checkpoint boundary).
//   - Layout: TP from the spec; DP = as many full TP groups as the workers
//     allow, capped by max_workers and by the global batch size.
func Plan(st *pb.ClusterState) []*pb.Command {
	free := freeWorkers(st)
	blocked, blocker := false, "" // a job ahead waits: later jobs may not take free workers
	var out []*pb.Command
	for _, j := range sortedJobs(st) {
		if Terminal(j.State) {
			continue
		}
		spec, err := JobSpec(j)
		if err != nil {
			out = append(out, &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
				JobId: j.Id, State: pb.JobState_JOB_STATE_FAILED, Reason: err.Error()}}})
			continue
		}
		p := spec.Parallel
		g := st.Generations[j.Id]
		if j.State == pb.JobState_JOB_STATE_RUNNING && g != nil {
			var live []string
			for _, r := range g.Ranks {
				// A member that was lost, re-registered (restarted) or moved
				// to another address no longer holds its rank.
				if w := st.Workers[r.WorkerId]; w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE &&
					w.JobId == j.Id && w.Address == r.Address {
					live = append(live, r.WorkerId)
				}
			}
			lost := len(live) < len(g.Ranks)
			ck := LatestCheckpoint(st, j.Id)
			// The generation resumes from a checkpoint that was dropped
			// (no correct copy of a shard was left): resume from the
			// previous one.
			dropped := g.ResumeStep > 0 && (g.ResumeJob == "" || g.ResumeJob == j.Id) && (ck == nil || ck.Step < g.ResumeStep)
			grow := p.ScaleUp == "immediate" || (ck != nil && ck.Step > g.ResumeStep)
			avail := free
			if blocked {
				avail = nil
			}
			n := usable(len(live)+len(avail), spec)
			restarts := j.Restarts
			if lost {
				restarts = restartsAfterLoss(j, g, ck)
				if limit := spec.Train.MaxRestarts; int(restarts) > limit {
					out = append(out, &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
						JobId: j.Id, State: pb.JobState_JOB_STATE_FAILED, Reason: fmt.Sprintf(
							"workers were lost in %d generations in a row without a checkpoint past step %d: the job may be crashing them (see their logs); raise train.max_restarts (%d) if the losses are the machines'",
							restarts, g.ResumeStep, limit)}}})
					continue
				}
			}
			switch {
			case lost && n < p.MinWorkers:
				// The reason matches the waiting branch below, so the next
				// round settles instead of rewriting it.
				reason := waitReason(p.MinWorkers, len(live)+len(avail))
				if blocked {
					reason = fmt.Sprintf("lost workers; free workers are held for %s ahead in the queue", blocker)
				}
				wc := waitCmd(j.Id, reason)
				wc.GetSetJobState().Restarts = &restarts
				out = append(out, wc)
				if !blocked {
					blocked, blocker = true, j.Id
				}
				continue
			case lost || dropped || (grow && n > len(g.Ranks)):
				// Survivors first, then free workers; among them the
				// holders of each TP shard of the resume checkpoint first,
				// so that a smaller generation keeps a holder of every
				// shard instead of several holders of one.
				cands := append(append([]string(nil), live...), avail...)
				take := pick(cands, n, p.TP, shardPref(st, j.Id))
				if !blocked {
					free = without(free, take)
				}
				reason := "scale up"
				switch {
				case lost:
					reason = fmt.Sprintf("lost or restarted %d worker(s)", len(g.Ranks)-len(live))
				case dropped:
					reason = fmt.Sprintf("checkpoint at step %d unavailable; resuming from step %d", g.ResumeStep, ck.GetStep())
				}
				gc := genCmd(st, j.Id, spec, take, reason)
				gc.GetCommitGeneration().Generation.Restarts = restarts
				out = append(out, gc)
			}
			continue
		}
		if blocked {
			continue // FIFO: wait behind the job ahead
		}
		n := usable(len(free), spec)
		if n < p.MinWorkers {
			reason := waitReason(p.MinWorkers, len(free))
			if j.State != pb.JobState_JOB_STATE_WAITING || j.Reason != reason {
				out = append(out, waitCmd(j.Id, reason))
			}
			blocked, blocker = true, j.Id
			continue
		}
		take := free[:n]
		free = free[n:]
		reason := "start"
		if LatestCheckpoint(st, j.Id) != nil {
			reason = "resume"
		}
		gc := genCmd(st, j.Id, spec, take, reason)
		gc.GetCommitGeneration().Generation.Restarts = j.Restarts
		out = append(out, gc)
	}
	return out
}

// WaitExpired returns the commands that fail each waiting job whose
// parallel.wait_timeout has run out at now: the leader calls it before Plan
// on every tick. Plan stays free of clocks; the time the job started waiting
// is in the replicated state (Job.waiting_since_unix_ms), so a new leader
// keeps counting from the same instant.
func WaitExpired(st *pb.ClusterState, now time.Time) []*pb.Command {
	var out []*pb.Command
	for _, j := range sortedJobs(st) {
		if j.State != pb.JobState_JOB_STATE_WAITING || j.WaitingSinceUnixMs == 0 {
			continue
		}
		spec, err := JobSpec(j)
		if err != nil {
			continue // Plan fails it
		}
		limit := spec.Parallel.WaitTimeoutDuration()
		waited := now.Sub(time.UnixMilli(j.WaitingSinceUnixMs))
		if limit <= 0 || waited < limit {
			continue
		}
		out = append(out, &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
			JobId: j.Id, State: pb.JobState_JOB_STATE_FAILED, Reason: fmt.Sprintf(
				"waited %s for workers (parallel.wait_timeout %s): %s; add workers or lower parallel.min_workers, then resubmit",
				waited.Round(time.Second), spec.Parallel.WaitTimeout, j.Reason)}}})
	}
	return out
}

// restartsAfterLoss is a job's restart count once its generation g lost
// workers: one more than before, or 1 when g made progress (a checkpoint
// past the step it resumed from was committed), so that only losses that
// keep the job from moving count towards train.max_restarts.
func restartsAfterLoss(j *pb.Job, g *pb.Generation, ck *pb.Checkpoint) uint32 {
	if ck != nil && ck.Step > g.ResumeStep {
		return 1
	}
	return j.Restarts + 1
}

// usable is how many of n workers a job can use: whole TP groups, at most
// max_workers, at most one DP rank per global batch row.
func usable(n int, spec jobspec.Spec) int {
	p := spec.Parallel
	if p.MaxWorkers > 0 && n > p.MaxWorkers {
		n = p.MaxWorkers
	}
	if b := spec.Train.BatchSize * p.TP; b > 0 && n > b {
		n = b
	}
	return n - n%p.TP
}

// freeWorkers lists alive workers that belong to no job, sorted by id.
func freeWorkers(st *pb.ClusterState) []string {
	var free []string
	for id, w := range st.Workers {
		if w.State == pb.WorkerState_WORKER_STATE_ALIVE && w.JobId == "" {
			free = append(free, id)
		}
	}
	sort.Strings(free)
	return free
}

func waitReason(min, free int) string {
	return fmt.Sprintf("need min_workers %d, %d free worker(s)", min, free)
}

func waitCmd(jobID, reason string) *pb.Command {
	return &pb.Command{Cmd: &pb.Command_SetJobState{SetJobState: &pb.SetJobStateCmd{
		JobId: jobID, State: pb.JobState_JOB_STATE_WAITING, Reason: reason}}}
}

func genCmd(st *pb.ClusterState, jobID string, spec jobspec.Spec, workers []string, reason string) *pb.Command {
	workers = arrange(workers, spec.Parallel.TP, shardPref(st, jobID))
	g := Layout(spec, workers, func(id string) string { return st.Workers[id].GetAddress() })
	g.JobId, g.Reason = jobID, reason
	g.CheckpointReplicas, g.ReplicaCopies = ReplicaCopies(g, spec.Checkpoint.Replicas,
		func(id string) string { return st.Workers[id].GetLabels()[HostLabel] })
	ck := LatestCheckpoint(st, jobID)
	if from := st.Jobs[jobID].GetInitFrom(); ck == nil && from != nil {
		ck, g.ResumeJob = from, from.JobId // submitted --from another job's checkpoint
	}
	if ck != nil {
		g.ResumeStep, g.ResumeTpSize = ck.Step, int32(len(ck.Shards))
		for _, sh := range ck.Shards {
			h := &pb.ShardHolders{Tp: sh.Tp, Checksum: sh.Checksum, Bytes: sh.Bytes}
			for _, id := range sh.WorkerIds {
				if w := st.Workers[id]; w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE {
					h.WorkerIds, h.Addresses = append(h.WorkerIds, id), append(h.Addresses, w.Address)
				}
			}
			g.ResumeFrom = append(g.ResumeFrom, h)
		}
	}
	return &pb.Command{Cmd: &pb.Command_CommitGeneration{CommitGeneration: &pb.CommitGenerationCmd{Generation: g}}}
}

// HostLabel is the worker label naming the machine a worker runs on
// (workers set it to the kernel's boot id; an operator may set it): copies
// of a checkpoint shard go to other machines first.
const HostLabel = "host"

// ReplicaCopies says how many distinct workers must hold each TP shard of
// g's checkpoints (replicas, capped by g's size) and who copies to whom to
// get there. The DP replicas of a shard (ranks (d, t) for every d) are its
// first copies; when they are fewer than needed, the k-th extra copy of
// shard t goes from rank (k mod DP, t) to the first rank, in the order
// (k mod DP, t+1+k/DP mod TP), (the next DP row, …), that does not hold
// the shard yet and runs on a machine (host(worker id)) none of its holders
// runs on; without one, to the first rank that does not hold it. Distinct
// workers, spread over the sources and over machines.
func ReplicaCopies(g *pb.Generation, replicas int, host func(workerID string) string) (int32, []*pb.ReplicaCopy) {
	dp, tp := int(g.DpSize), int(g.TpSize)
	need := min(max(replicas, 1), dp*tp)
	if host == nil {
		host = func(string) string { return "" }
	}
	m := parallel.Mesh{DP: dp, TP: tp}
	var copies []*pb.ReplicaCopy
	for t := range tp {
		holds := make([]bool, dp*tp)
		hosts := map[string]bool{}
		for d := range dp {
			holds[m.Rank(d, t)] = true
			hosts[host(g.Ranks[m.Rank(d, t)].WorkerId)] = true
		}
		for k := range need - dp {
			d := k % dp
			var order []int // candidate ranks, the formula's first
			for i := range dp * tp {
				dd, tt := (d+i/tp)%dp, (t+1+k/dp+i)%tp
				order = append(order, m.Rank(dd, tt))
			}
			to := -1
			for _, r := range order {
				if holds[r] {
					continue
				}
				if !hosts[host(g.Ranks[r].WorkerId)] {
					to = r // a machine without a copy yet
					break
				}
				if to < 0 {
					to = r
				}
			}
			holds[to] = true
			hosts[host(g.Ranks[to].WorkerId)] = true
			copies = append(copies, &pb.ReplicaCopy{From: int32(m.Rank(d, t)), To: int32(to)})
		}
	}
	return int32(need), copies
}

// Layout builds the rank table for workers (in the order given; len must be a
// multiple of the spec's TP) from the mesh the workers build: rank = dp·TP + tp
// (parallel.Mesh), so a TP group is a run of consecutive ranks, and DP group d
// computes rows Mesh.Rows(d, B) of the global batch: the table that status
// shows is what the workers compute. The ring is rank order.
func Layout(spec jobspec.Spec, workers []string, addr func(id string) string) *pb.Generation {
	m := parallel.Mesh{DP: len(workers) / spec.Parallel.TP, TP: spec.Parallel.TP}
	b := spec.Train.BatchSize
	g := &pb.Generation{DpSize: int32(m.DP), TpSize: int32(m.TP), GlobalBatch: int32(b)}
	for r, w := range workers[:m.World()] {
		d, t := m.Coords(r)
		lo, hi := m.Rows(d, b)
		g.Ranks = append(g.Ranks, &pb.Rank{Rank: int32(r), WorkerId: w, Address: addr(w),
			Dp: int32(d), Tp: int32(t), BatchOffset: int32(lo), BatchRows: int32(hi - lo)})
		g.Ring = append(g.Ring, int32(r))
	}
	return g
}

// shardPref is the TP index each worker should keep so that resuming loads
// a shard it already holds. The commit record of the resume checkpoint is
// authoritative (it says who holds which shard of that step): a worker
// that holds its current rank's shard keeps that index, one that holds
// only other shards (replicas) takes the lowest of them, and a worker it
// does not name keeps its rank's index in the current generation.
func shardPref(st *pb.ClusterState, jobID string) map[string]int {
	pref := map[string]int{}
	if old := st.Generations[jobID]; old != nil {
		for _, r := range old.Ranks {
			pref[r.WorkerId] = int(r.Tp)
		}
	}
	if ck := LatestCheckpoint(st, jobID); ck != nil {
		held := map[string][]int{}
		for _, sh := range ck.Shards {
			for _, id := range sh.WorkerIds {
				held[id] = append(held[id], int(sh.Tp))
			}
		}
		for id, tps := range held {
			if p, ok := pref[id]; !ok || !slices.Contains(tps, p) {
				pref[id] = slices.Min(tps)
			}
		}
	}
	return pref
}

// pick chooses n of cands (n a multiple of tp, n ≤ len(cands)): first, in
// the order given, workers that hold a TP index, at most n/tp per index
// (one per DP group); then the rest in order. The result keeps the order
// of cands.
func pick(cands []string, n, tp int, pref map[string]int) []string {
	groups := n / tp
	per := make([]int, tp)
	chosen := make(map[string]bool, n)
	for _, w := range cands {
		if len(chosen) == n {
			break
		}
		if t, ok := pref[w]; ok && t >= 0 && t < tp && per[t] < groups {
			per[t]++
			chosen[w] = true
		}
	}
	for _, w := range cands {
		if len(chosen) == n {
			break
		}
		chosen[w] = true
	}
	out := make([]string, 0, n)
	for _, w := range cands {
		if chosen[w] {
			out = append(out, w)
		}
	}
	return out
}

// without returns ids minus those in drop, in order.
func without(ids, drop []string) []string {
	out := ids[:0:0]
	for _, id := range ids {
		if !slices.Contains(drop, id) {
			out = append(out, id)
		}
	}
	return out
}

// arrange orders workers into rank slots (rank = dp·tp + t): first each
// worker with a preferred TP index takes the first free slot of that index,
// in the order given; the rest fill the remaining slots in order.
func arrange(workers []string, tp int, pref map[string]int) []string {
	slots := make([]string, len(workers))
	placed := make(map[string]bool, len(workers))
	for _, w := range workers {
		p, ok := pref[w]
		if !ok || p < 0 || p >= tp {
			continue
		}
		for i := p; i < len(slots); i += tp {
			if slots[i] == "" {
				slots[i], placed[w] = w, true
				break
			}
		}
	}
	i := 0
	for _, w := range workers {
		if placed[w] {
			continue
		}
		for slots[i] != "" {
			i++
		}
		slots[i] = w
	}
	return slots
}

// InitCheckpoint resolves `submit --from job@step` (step 0: the newest) to
// that job's commit record, checking that spec's model is the one the
// checkpoint holds: every differing model field is named.
func InitCheckpoint(st *pb.ClusterState, spec jobspec.Spec, job string, step int64) (*pb.Checkpoint, error) {
	src := st.Jobs[job]
	if src == nil {
		return nil, fmt.Errorf("--from %s: no such job", job)
	}
	list := st.Checkpoints[job].GetItems()
	if len(list) == 0 {
		return nil, fmt.Errorf("--from %s: the job has no committed checkpoint", job)
	}
	ck := list[len(list)-1]
	if step > 0 {
		i := slices.IndexFunc(list, func(c *pb.Checkpoint) bool { return c.Step == step })
		if i < 0 {
			var steps []string
			for _, c := range list {
				steps = append(steps, fmt.Sprint(c.Step))
			}
			return nil, fmt.Errorf("--from %s@%d: not a committed checkpoint of %s; committed steps: %s", job, step, job, strings.Join(steps, ", "))
		}
		ck = list[i]
	}
	srcSpec, err := JobSpec(src)
	if err != nil {
		return nil, fmt.Errorf("--from %s: %w", job, err)
	}
	if diff := jobspec.ModelDiff(srcSpec.Model, spec.Model); len(diff) > 0 {
		return nil, fmt.Errorf("--from %s@%d: the model differs from the checkpoint's (%s); a checkpoint loads only into the same model: change these fields to match", job, ck.Step, strings.Join(diff, "; "))
	}
	return proto.Clone(ck).(*pb.Checkpoint), nil
}
