package coord

import (
	"fmt"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Admit checks a parsed spec against the workers registered in st before it
// is submitted. It refuses a job whose replica cannot fit in the memory of
// any alive worker that reported its memory, even in the layout that needs
// the least per worker (the most data-parallel ranks the cluster and the
// spec allow, one lane, a vocabulary counted as 1 where the tokenizer sets
// it): such a job would only fail on every worker it is given. With no
// worker reporting memory, every spec is admitted; a job short of workers
// is not refused but waits (see parallel.wait_timeout).
func Admit(st *pb.ClusterState, spec jobspec.Spec) error {
	spec = spec.WithDefaults()
	var alive int
	var best *pb.Worker // the alive worker with the most memory
	for _, w := range SortedWorkers(st) {
		if w.State != pb.WorkerState_WORKER_STATE_ALIVE {
			continue
		}
		alive++
		if w.MemoryBytes > 0 && (best == nil || w.MemoryBytes > best.MemoryBytes) {
			best = w
		}
	}
	if best == nil {
		return nil
	}
	tp := spec.Parallel.TP
	dp := max(usable(max(alive, spec.Parallel.MinWorkers), spec)/tp, 1)
	est, err := jobspec.EstimateMemory(spec, jobspec.Layout{DP: dp, TP: tp, Lanes: 1, VocabSize: 1})
	if err != nil {
		return fmt.Errorf("admission: %w", err)
	}
	if err := est.Fits(best.MemoryBytes); err != nil {
		return fmt.Errorf("admission at dp %d × tp %d, on the largest of %d registered worker(s) (%s): %w", dp, tp, alive, best.Id, err)
	}
	return nil
}
