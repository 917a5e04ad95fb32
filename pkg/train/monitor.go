package train

import (
	"math"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/jobspec"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
)

// flopsPerToken is the training FLOPs per token of spec's model as nanoGPT's
// estimate_mfu counts them (metrics.FLOPsPerToken): the parameters less the
// learned position embedding (GPT, BERT), the layers, heads, head width and
// context. For the encoder–decoder, model.n_layer stands for each stack.
func flopsPerToken(spec jobspec.Spec) float64 {
	est, err := jobspec.EstimateMemory(spec, jobspec.Layout{VocabSize: 1})
	if err != nil {
		return 0
	}
	c := spec.Model.WithDefaults()
	n := est.Params
	if c.Arch != "encdec" {
		n -= int64(c.BlockSize * c.NEmbd)
	}
	return metrics.FLOPsPerToken(int(n), c.NLayer, c.NHead, c.NEmbd/c.NHead, c.BlockSize)
}

// stepWindow keeps the recent steps' wall and compute times (compute: the
// step less its waits on peers) for the heartbeat and tokens/s: medians,
// so one slow step (a checkpoint, a GC) does not swing them.
type stepWindow struct {
	wall, compute []time.Duration
}

const stepWindowLen = 20

func (s *stepWindow) add(st StepStats, wall time.Duration) {
	compute := max(wall-st.TPComm-st.DPExposed-st.ZeROGather, 0)
	s.wall = append(s.wall, wall)
	s.compute = append(s.compute, compute)
	if len(s.wall) > stepWindowLen {
		s.wall, s.compute = s.wall[1:], s.compute[1:]
	}
}

func (s *stepWindow) medians() (wall, compute time.Duration) {
	return medianOf(s.wall), medianOf(s.compute)
}

// medianOf is the median of all of ds (median drops the first steps).
func medianOf(ds []time.Duration) time.Duration {
	if len(ds) <= 20 {
		return median(ds)
	}
	return median(ds[len(ds)-20:])
}

// recovery remembers when this worker's generation of a job broke (a
// collective failed, or the coordinator moved the worker to a newer
// generation) and the step it had reached, until the next generation's
// first step measures the recovery.
type recovery struct {
	job  string
	at   time.Time
	step int
}

// markBroken records the first break of the current generation; later ones
// (the new assignment that follows a collective failure) keep the first.
func (w *Worker) markBroken(job string, step int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken.at.IsZero() || w.broken.job != job {
		w.broken = recovery{job: job, at: time.Now(), step: step}
	}
}

// takeRecovery returns and clears the pending recovery of job.
func (w *Worker) takeRecovery(job string) (recovery, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.broken
	w.broken = recovery{}
	return r, !r.at.IsZero() && r.job == job
}

func storeFloat(a interface{ Store(uint64) }, x float64) { a.Store(math.Float64bits(x)) }
