package coord

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// CheckpointTracker is the leader's soft state for checkpoint reports: which
// workers say they hold which TP shard of which step, and the checksum of
// what they hold. Ready says which steps can be committed: every TP shard of
// the job's current generation durable on at least the generation's
// checkpoint_replicas distinct live workers, all with the same checksum
// (DESIGN.md "Checkpoint commit"). Holders of one shard whose checksums
// differ have diverged: that step never commits, and Ready says so. A final
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
	holders    map[int32]map[string][]byte // tp → worker → checksum
	bytes      map[int32]int64             // tp → payload bytes
}

// Divergence is a TP shard of a step whose holders reported different
// checksums: data-parallel replicas that should hold identical state do
// not, and the job cannot go on trusting either.
type Divergence struct {
	Job    string
	Step   int64
	TP     int32
	Reason string // names the holders (and their ranks) and checksums
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
		p = &pendingCkpt{generation: r.Generation, holders: map[int32]map[string][]byte{}, bytes: map[int32]int64{}}
		t.pending[k] = p
	}
	p.final = p.final || r.Final
	if p.holders[r.Tp] == nil {
		p.holders[r.Tp] = map[string][]byte{}
	}
	p.holders[r.Tp][r.WorkerId] = r.Checksum
	p.bytes[r.Tp] = max(p.bytes[r.Tp], r.Bytes)
}

// Ready returns the checkpoints that can be committed now, newest step per
// job, and the shards whose holders diverged; it drops reports that can
// never commit (job gone, step not newer than the last committed one, a
// diverged step).
func (t *CheckpointTracker) Ready(st *pb.ClusterState) ([]*pb.Checkpoint, []Divergence) {
	var out []*pb.Checkpoint
	var diverged []Divergence
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
		if d, ok := p.diverged(k, g); ok {
			diverged = append(diverged, d)
			delete(t.pending, k)
			continue
		}
		need := max(int(g.CheckpointReplicas), 1)
		ck := &pb.Checkpoint{JobId: k.job, Step: k.step, Generation: p.generation, Final: p.final}
		complete := true
		for tp := int32(0); tp < g.TpSize; tp++ {
			var ids []string
			var sum []byte
			for id, s := range p.holders[tp] {
				if w := st.Workers[id]; w != nil && w.State == pb.WorkerState_WORKER_STATE_ALIVE {
					ids, sum = append(ids, id), s
				}
			}
			if len(ids) < need {
				complete = false
				break
			}
			sort.Strings(ids)
			ck.Shards = append(ck.Shards, &pb.ShardHolders{Tp: tp, WorkerIds: ids, Checksum: sum, Bytes: p.bytes[tp]})
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
	return newest, diverged
}

// diverged finds a TP shard whose holders reported different checksums
// (a report without one, from an older worker, compares with nothing).
func (p *pendingCkpt) diverged(k ckptKey, g *pb.Generation) (Divergence, bool) {
	tps := make([]int32, 0, len(p.holders))
	for tp := range p.holders {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(a, b int) bool { return tps[a] < tps[b] })
	for _, tp := range tps {
		ids := make([]string, 0, len(p.holders[tp]))
		for id, s := range p.holders[tp] {
			if len(s) > 0 {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids[min(1, len(ids)):] {
			if bytes.Equal(p.holders[tp][id], p.holders[tp][ids[0]]) {
				continue
			}
			var parts []string
			for _, id := range ids {
				parts = append(parts, fmt.Sprintf("%s%s sha256 %.8x", id, rankOf(g, id), p.holders[tp][id]))
			}
			return Divergence{Job: k.job, Step: k.step, TP: tp, Reason: fmt.Sprintf(
				"checkpoint at step %d: the holders of tp shard %d hold different state (%s): data-parallel replicas diverged (a faulty machine or a nondeterministic kernel); the job stopped at its last committed checkpoint",
				k.step, tp, strings.Join(parts, ", "))}, true
		}
	}
	return Divergence{}, false
}

// rankOf names a worker's rank in g, for messages.
func rankOf(g *pb.Generation, id string) string {
	for _, r := range g.Ranks {
		if r.WorkerId == id {
			return fmt.Sprintf(" (rank %d: dp %d, tp %d)", r.Rank, r.Dp, r.Tp)
		}
	}
	return ""
}

// allRanks says whether every worker of generation g has reported.
func (p *pendingCkpt) allRanks(g *pb.Generation) bool {
	for _, r := range g.Ranks {
		if _, ok := p.holders[r.Tp][r.WorkerId]; !ok {
			return false
		}
	}
	return true
}
