package coord

import (
	"sort"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// CheckpointTracker is the leader's soft state for checkpoint reports: which
// workers say they hold which TP shard of which step. Ready says which steps
// can be committed: every TP shard of the job's current generation durable on
// at least one live worker (DESIGN.md "Checkpoint commit"). A final
// checkpoint completes the job, so it waits for every rank of the
// generation: data-parallel rank 0 reports only after it has gathered and
// saved the final model, and committing on the other replicas' reports
// alone would cancel that save mid-gather. Pure; not safe
// for concurrent use. A new leader starts with an empty tracker: workers
// re-report, and until then nothing is lost but time.
type CheckpointTracker struct {
	pending map[ckptKey]*pendingCkpt
}

type ckptKey struct {
	job  string
	step int64
}

type pendingCkpt struct {
	generation uint64
	final      bool
	holders    map[int32]map[string]bool // tp → workers
}

// NewCheckpointTracker returns an empty tracker.
func NewCheckpointTracker() *CheckpointTracker {
	return &CheckpointTracker{pending: map[ckptKey]*pendingCkpt{}}
}

// Report records one worker's durable shard.
func (t *CheckpointTracker) Report(r *pb.ReportCheckpointRequest) {
	k := ckptKey{r.JobId, r.Step}
	p := t.pending[k]
	if p == nil {
		p = &pendingCkpt{generation: r.Generation, holders: map[int32]map[string]bool{}}
		t.pending[k] = p
	}
	p.final = p.final || r.Final
	if p.holders[r.Tp] == nil {
		p.holders[r.Tp] = map[string]bool{}
	}
	p.holders[r.Tp][r.WorkerId] = true
}

// Ready returns the checkpoints that can be committed now, oldest step
// first per job, and drops reports that can never commit (job gone, step
// not newer than the last committed one).
func (t *CheckpointTracker) Ready(st *pb.ClusterState) []*pb.Checkpoint {
	var out []*pb.Checkpoint
	keys := make([]ckptKey, 0, len(t.pending))
	for k := range t.pending {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].job != keys[b].job {
			return keys[a].job < keys[b].job
		}
		return keys[a].step < keys[b].step
	})
	for _, k := range keys {
		p := t.pending[k]
		j := st.Jobs[k.job]
		g := st.Generations[k.job]
		last := LatestCheckpoint(st, k.job)
		if j == nil || Terminal(j.State) || (last != nil && k.step <= last.Step) {
			delete(t.pending, k)
			continue
		}
		if g == nil || g.TpSize < 1 {
			continue
		}
		ck := &pb.Checkpoint{JobId: k.job, Step: k.step, Generation: p.generation, Final: p.final}
		complete := true
		for tp := int32(0); tp < g.TpSize; tp++ {
			var ids []string
			for id := range p.holders[tp] {
				if w := st.Workers[id]; w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				complete = false
				break
			}
			sort.Strings(ids)
			ck.Shards = append(ck.Shards, &pb.ShardHolders{Tp: tp, WorkerIds: ids})
		}
		if complete && p.final {
			complete = p.allRanks(g)
		}
		if complete {
			out = append(out, ck)
			delete(t.pending, k)
		}
	}
	// Only the newest ready step per job matters; older ones would be stale.
	var newest []*pb.Checkpoint
	for i, c := range out {
		if i+1 < len(out) && out[i+1].JobId == c.JobId {
			continue
		}
		newest = append(newest, c)
	}
	return newest
}

// allRanks says whether every worker of generation g has reported.
func (p *pendingCkpt) allRanks(g *pb.Generation) bool {
	for _, r := range g.Ranks {
		if !p.holders[r.Tp][r.WorkerId] {
			return false
		}
	}
	return true
}
