package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Training is a worker's training series. A worker creates one and asks
// it for a JobTraining handle per (job, rank) it trains; the handle's
// methods are what the training loop calls on every step.
type Training struct {
	loss, valLoss, step, tokensPS, mfu, fpt, gradNorm, lr, gen *prometheus.GaugeVec
	tokens, nonFinite                                          *prometheus.CounterVec
	phase                                                      *prometheus.CounterVec
	stepSecs                                                   *prometheus.HistogramVec
	// checkpoints and recovery
	saveSecs, loadSecs, stallSecs, recoverySecs, replayed *prometheus.HistogramVec
	saveBytes, loadBytes, checksumFails, transfers        *prometheus.CounterVec
	savesSkipped, saveFailures                            *prometheus.CounterVec
	peerSecs                                              *prometheus.HistogramVec // job, rank, kind
	peerBytes                                             *prometheus.CounterVec   // job, rank, kind
	peak                                                  prometheus.Gauge
	peakFLOPS                                             float64

	current []string // label values of the live handle, deleted when it is replaced
}

// NewTraining creates the training collectors and registers them on reg.
// peakFLOPS is this worker's peak (FLOP/s), the MFU denominator; 0 leaves
// MFU unexported.
func NewTraining(reg prometheus.Registerer, peakFLOPS float64) *Training {
	jr := []string{LabelJob, LabelRank}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, jr)
	}
	t := &Training{
		loss:     gauge(TrainLoss, "Training loss of the latest step (global batch)."),
		valLoss:  gauge(TrainValLoss, "Validation loss of the latest evaluation."),
		step:     gauge(TrainStep, "Steps completed (the next step's iteration)."),
		tokensPS: gauge(TrainTokensPerSecond, "Tokens per second of the whole job, over the recent steps."),
		mfu:      gauge(TrainMFU, "Model FLOPs utilisation: tokens/s × FLOPs per token over the job's peak (world × worker peak)."),
		fpt:      gauge(TrainFLOPsPerToken, "Training FLOPs per token (6·N + 12·L·H·Q·T, as nanoGPT's estimate_mfu)."),
		gradNorm: gauge(TrainGradNorm, "Global gradient norm before clipping of the latest step."),
		lr:       gauge(TrainLearningRate, "Learning rate of the latest step."),
		gen:      gauge(TrainGeneration, "Generation this worker trains."),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TrainTokensTotal, Help: "Tokens of the global batches this rank stepped through."}, jr),
		nonFinite: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TrainNonFiniteTotal, Help: "Steps skipped for a NaN or infinite loss or gradient norm."}, jr),
		phase: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: TrainPhaseSeconds, Help: "Step time by phase; the gradient all-reduce is split into exposed and hidden (overlapped with backward)."},
			[]string{LabelJob, LabelRank, LabelPhase}),
		stepSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: TrainStepSeconds, Help: "Duration of optimizer steps.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16)}, jr), // 1 ms … 33 s
		saveSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: CkptSaveSeconds, Help: "Time to write and fsync this rank's checkpoint shard.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16)}, jr),
		loadSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: CkptLoadSeconds, Help: "Time to bring this rank to the resume step (read its shard or receive a replica's).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16)}, jr),
		stallSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: CkptStallSeconds, Help: "Time the training loop was blocked by a checkpoint save.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 18)}, jr),
		saveBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptSaveBytesTotal, Help: "Checkpoint bytes written (parameters and optimizer state)."}, jr),
		loadBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptLoadBytesTotal, Help: "Checkpoint bytes loaded at resume, from the local store or a replica."}, jr),
		checksumFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptChecksumFailuresTotal, Help: "Stored checkpoint shards refused at load because their checksum did not match."}, jr),
		savesSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptSavesSkippedTotal, Help: "Checkpoint saves skipped because the previous one was still being written (at most one is in flight)."}, jr),
		saveFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptSaveFailuresTotal, Help: "Checkpoint saves that failed to write or fsync; the step is not reported, so never committed."}, jr),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptReplicaTransfersTotal, Help: "Resumes where this rank received its state from a data-parallel replica instead of its own store."}, jr),
		peerSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: CkptPeerTransferSeconds, Help: "Checkpoint shards received from peers: kind copy (a replica the generation asked this worker to keep) or fetch (a shard this rank had to load and did not hold).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 16)}, []string{LabelJob, LabelRank, LabelKind}),
		peerBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: CkptPeerTransferBytesTotal, Help: "Checkpoint payload bytes received from peers, by kind (copy, fetch)."}, []string{LabelJob, LabelRank, LabelKind}),
		recoverySecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RecoverySeconds, Help: "From a generation breaking (a peer lost, or this worker moved to a new generation) to the first step of the next one.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12)}, jr), // 50 ms … 102 s
		replayed: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RecoveryStepsReplayed, Help: "Steps trained again after a recovery: the step reached before it less the resume step.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}, jr), // 1 … 8192
		peak: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: TrainPeakFLOPS, Help: "This worker's peak FLOP/s, the MFU denominator (flag, or measured once at start)."}),
		peakFLOPS: peakFLOPS,
	}
	t.peak.Set(peakFLOPS)
	if reg != nil {
		reg.MustRegister(t.loss, t.valLoss, t.step, t.tokensPS, t.mfu, t.fpt, t.gradNorm, t.lr, t.gen,
			t.tokens, t.nonFinite, t.phase, t.stepSecs, t.peak,
			t.saveSecs, t.loadSecs, t.stallSecs, t.recoverySecs, t.replayed,
			t.saveBytes, t.loadBytes, t.checksumFails, t.transfers, t.savesSkipped, t.saveFailures, t.peerSecs, t.peerBytes)
	}
	return t
}

// Job returns the handles for one (job, rank, generation) and removes the
// series of the previous handle, so a worker exports one rank at a time.
// flopsPerToken and world size the MFU: the job's tokens/s × flopsPerToken
// over world × this worker's peak. Not safe for concurrent use with itself.
func (t *Training) Job(jobID string, rank, world int, generation uint64, flopsPerToken float64) *JobTraining {
	lv := []string{jobID, strconv.Itoa(rank)}
	if t.current != nil && (t.current[0] != lv[0] || t.current[1] != lv[1]) {
		t.forget(t.current)
	}
	t.current = lv
	j := &JobTraining{
		t: t, lv: lv,
		step:   t.step.WithLabelValues(lv...),
		tokens: t.tokens.WithLabelValues(lv...), nonFinite: t.nonFinite.WithLabelValues(lv...),
		stepSecs: t.stepSecs.WithLabelValues(lv...),
		fwdBwd:   t.phase.WithLabelValues(lv[0], lv[1], PhaseForwardBackward),
		opt:      t.phase.WithLabelValues(lv[0], lv[1], PhaseOptimizer),
		commTP:   t.phase.WithLabelValues(lv[0], lv[1], PhaseCommTP),
		exposed:  t.phase.WithLabelValues(lv[0], lv[1], PhaseCommDPExposed),
		hidden:   t.phase.WithLabelValues(lv[0], lv[1], PhaseCommDPHidden),

		saveSecs: t.saveSecs.WithLabelValues(lv...), loadSecs: t.loadSecs.WithLabelValues(lv...),
		stallSecs: t.stallSecs.WithLabelValues(lv...), recoverySecs: t.recoverySecs.WithLabelValues(lv...),
		replayed: t.replayed.WithLabelValues(lv...), saveBytes: t.saveBytes.WithLabelValues(lv...),
		loadBytes: t.loadBytes.WithLabelValues(lv...), checksumFails: t.checksumFails.WithLabelValues(lv...),
		transfers: t.transfers.WithLabelValues(lv...), savesSkipped: t.savesSkipped.WithLabelValues(lv...),
		saveFailures: t.saveFailures.WithLabelValues(lv...),
	}
	t.gen.WithLabelValues(lv...).Set(float64(generation))
	t.fpt.WithLabelValues(lv...).Set(flopsPerToken)
	if t.peakFLOPS > 0 && world > 0 && flopsPerToken > 0 {
		j.mfuScale = flopsPerToken / (float64(world) * t.peakFLOPS)
	}
	return j
}

func (t *Training) forget(lv []string) {
	for _, v := range []*prometheus.GaugeVec{t.loss, t.valLoss, t.step, t.tokensPS, t.mfu, t.fpt, t.gradNorm, t.lr, t.gen} {
		v.DeleteLabelValues(lv...)
	}
	for _, v := range []*prometheus.CounterVec{t.tokens, t.nonFinite, t.saveBytes, t.loadBytes, t.checksumFails, t.transfers,
		t.savesSkipped, t.saveFailures} {
		v.DeleteLabelValues(lv...)
	}
	for _, v := range []*prometheus.HistogramVec{t.stepSecs, t.saveSecs, t.loadSecs, t.stallSecs, t.recoverySecs, t.replayed} {
		v.DeleteLabelValues(lv...)
	}
	t.phase.DeletePartialMatch(prometheus.Labels{LabelJob: lv[0], LabelRank: lv[1]})
	t.peerSecs.DeletePartialMatch(prometheus.Labels{LabelJob: lv[0], LabelRank: lv[1]})
	t.peerBytes.DeletePartialMatch(prometheus.Labels{LabelJob: lv[0], LabelRank: lv[1]})
}

// Step is what the training loop knows after one optimizer step.
type Step struct {
	Next         int // steps completed: the next iteration
	Loss, LR     float64
	GradNorm     float64
	Tokens       int     // tokens of the global batch
	TokensPerSec float64 // the job's, over recent steps
	Duration     time.Duration
	// Phases: ForwardBackward includes TPComm; DPWindow is the whole
	// gradient all-reduce, DPExposed its part after backward.
	ForwardBackward, Optimizer, TPComm, DPWindow, DPExposed time.Duration
}

// JobTraining holds one rank's curried series; its methods do not
// allocate, so the training loop calls them on every step.
type JobTraining struct {
	t  *Training
	lv []string
	// The gauges a step or an evaluation sets appear with their first
	// value: a 0 loss before the first step would read as a perfect model.
	loss, valLoss, tokensPS, gradNorm, lr, mfu prometheus.Gauge
	step                                       prometheus.Gauge
	tokens, nonFinite                          prometheus.Counter
	fwdBwd, opt, commTP, exposed, hidden       prometheus.Counter
	stepSecs                                   prometheus.Observer
	mfuScale                                   float64

	saveSecs, loadSecs, stallSecs, recoverySecs, replayed prometheus.Observer
	saveBytes, loadBytes, checksumFails, transfers        prometheus.Counter
	savesSkipped, saveFailures                            prometheus.Counter
}

func (j *JobTraining) firstStep() {
	t, lv := j.t, j.lv
	j.loss, j.tokensPS = t.loss.WithLabelValues(lv...), t.tokensPS.WithLabelValues(lv...)
	j.gradNorm, j.lr = t.gradNorm.WithLabelValues(lv...), t.lr.WithLabelValues(lv...)
	if j.mfuScale > 0 {
		j.mfu = t.mfu.WithLabelValues(lv...)
	}
}

// Observe records one completed step.
func (j *JobTraining) Observe(s *Step) {
	if j.loss == nil {
		j.firstStep()
	}
	j.loss.Set(s.Loss)
	j.step.Set(float64(s.Next))
	j.lr.Set(s.LR)
	j.gradNorm.Set(s.GradNorm)
	j.tokens.Add(float64(s.Tokens))
	j.tokensPS.Set(s.TokensPerSec)
	if j.mfu != nil {
		j.mfu.Set(s.TokensPerSec * j.mfuScale)
	}
	j.stepSecs.Observe(s.Duration.Seconds())
	if s.ForwardBackward > 0 {
		j.fwdBwd.Add(s.ForwardBackward.Seconds())
	}
	if s.Optimizer > 0 {
		j.opt.Add(s.Optimizer.Seconds())
	}
	if s.TPComm > 0 {
		j.commTP.Add(s.TPComm.Seconds())
	}
	if s.DPExposed > 0 {
		j.exposed.Add(s.DPExposed.Seconds())
	}
	if h := s.DPWindow - s.DPExposed; h > 0 {
		j.hidden.Add(h.Seconds())
	}
}

// NonFinite counts a step skipped for a NaN/Inf loss and exports the loss.
func (j *JobTraining) NonFinite(loss float64) {
	if j.loss == nil {
		j.firstStep()
	}
	j.nonFinite.Inc()
	j.loss.Set(loss)
}

// Eval records a validation loss.
func (j *JobTraining) Eval(valLoss float64) {
	if j.valLoss == nil {
		j.valLoss = j.t.valLoss.WithLabelValues(j.lv...)
	}
	j.valLoss.Set(valLoss)
}

// Saved records a checkpoint save: from the snapshot to durable on disk,
// how long the training loop was blocked by it, and the bytes written.
// Safe to call from the background writer.
func (j *JobTraining) Saved(took, stalled time.Duration, bytes int64) {
	j.saveSecs.Observe(took.Seconds())
	j.stallSecs.Observe(stalled.Seconds())
	j.saveBytes.Add(float64(bytes))
}

// Loaded records a resume: the time to reach the resume step's state and
// the bytes read or received; fromReplica counts a replica transfer.
func (j *JobTraining) Loaded(took time.Duration, bytes int64, fromReplica bool) {
	j.loadSecs.Observe(took.Seconds())
	j.loadBytes.Add(float64(bytes))
	if fromReplica {
		j.transfers.Inc()
	}
}

// Peer transfer kinds.
const (
	TransferCopy  = "copy"  // a replica of a peer's new shard
	TransferFetch = "fetch" // a shard this rank needed to load
)

// PeerTransfer records a shard received from a peer. Safe for concurrent use.
func (j *JobTraining) PeerTransfer(kind string, took time.Duration, bytes int64) {
	j.t.peerSecs.WithLabelValues(j.lv[0], j.lv[1], kind).Observe(took.Seconds())
	j.t.peerBytes.WithLabelValues(j.lv[0], j.lv[1], kind).Add(float64(bytes))
}

// SaveSkipped counts a save not started because the previous one was
// still being written.
func (j *JobTraining) SaveSkipped() { j.savesSkipped.Inc() }

// SaveFailed counts a save whose write or fsync failed.
func (j *JobTraining) SaveFailed() { j.saveFailures.Inc() }

// ChecksumFailure counts a stored shard refused for a bad checksum.
func (j *JobTraining) ChecksumFailure() { j.checksumFails.Inc() }

// Recovered records a recovery: from the previous generation breaking to
// this generation's first step, and the steps that will be trained again.
func (j *JobTraining) Recovered(took time.Duration, stepsReplayed int) {
	j.recoverySecs.Observe(took.Seconds())
	j.replayed.Observe(float64(stepsReplayed))
}

// FLOPsPerToken counts training FLOPs per token as nanoGPT's estimate_mfu
// and bench/babygpt do: 6·N + 12·L·H·Q·T, with N the parameters without the
// position embedding, L layers, H heads of width Q, T the context length.
func FLOPsPerToken(nonEmbeddingParams, layers, heads, headDim, seqLen int) float64 {
	return 6*float64(nonEmbeddingParams) + 12*float64(layers*heads*headDim*seqLen)
}
