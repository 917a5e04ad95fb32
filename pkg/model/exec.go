package model

import "github.com/ringmaster-ml/ringmaster/pkg/vecmath"

// exec is how a model's layers run: the worker pool for parallel loops and
// whether to use the plain reference loops instead of the fast kernels
// (tests compare the two). The parallel loops' jobs live here so that
// handing them to the pool allocates nothing. A nil *exec means "fast
// kernels on the calling goroutine"; that is what the exported layer
// methods use.
type exec struct {
	pool    *workers
	threads int  // goroutines for the pool (Compute.Threads)
	started bool // pool has been set up (GPT.startPool)
	ref     bool

	act       actJob
	attn      attnJob
	ln        lnJob
	lnPartial []float32 // LayerNorm backward: (items,2,C) dW, dB per item
	scratch   []float32 // attention backward: one (T,S) block per participant
}

func (ex *exec) reference() bool { return ex != nil && ex.ref }

func (ex *exec) workers() *workers {
	if ex == nil {
		return nil
	}
	return ex.pool
}

// attnScratch returns (participants,T·S) of scratch for attention heads.
func (ex *exec) attnScratch(ts int) []float32 {
	if n := ex.pool.size() * ts; len(ex.scratch) < n {
		ex.scratch = make([]float32, n)
	}
	return ex.scratch
}

// actChunk is the number of elements one item of a parallel activation loop covers.
const actChunk = 16384

// actKind is what an actJob computes.
type actKind int

const (
	actFwd     actKind = iota // out = f(inp)
	actBack                   // out += f'(inp)·dout
	actFwdGrad                // out = f(inp), inp = f'(inp) (GELU)
	actBackMul                // out = dout·inp, inp holding f'(x) from actFwdGrad
)

// actJob is one of the activation loops over chunks of actChunk elements.
type actJob struct {
	kind           actKind
	act            Activation
	out, inp, dout []float32
}

func (j *actJob) run(i, _ int) {
	lo, hi := i*actChunk, min((i+1)*actChunk, len(j.inp))
	switch j.kind {
	case actFwd:
		actForward(j.act, j.out[lo:hi], j.inp[lo:hi])
	case actBack:
		actBackward(j.act, j.out[lo:hi], j.dout[lo:hi], j.inp[lo:hi])
	case actFwdGrad:
		vecmath.GeluFwdGrad(j.out[lo:hi], j.inp[lo:hi], j.inp[lo:hi])
	case actBackMul:
		vecmath.Mul(j.out[lo:hi], j.dout[lo:hi], j.inp[lo:hi])
	}
}

// runAct runs j's chunks on the caller when the slice is short or ex has
// no workers, else in parallel.
func (ex *exec) runAct(j actJob) {
	chunks := (len(j.inp) + actChunk - 1) / actChunk
	if ex.workers() == nil || len(j.inp) < 2*actChunk {
		for i := range chunks {
			j.run(i, 0)
		}
		return
	}
	ex.act = j
	ex.pool.For(chunks, &ex.act)
	ex.act = actJob{}
}

// actForward runs ActForward, in parallel chunks when ex has workers.
func (ex *exec) actForward(act Activation, out, inp []float32) {
	if ex.reference() {
		actForwardRef(act, out, inp)
		return
	}
	ex.runAct(actJob{kind: actFwd, act: act, out: out[:len(inp)], inp: inp})
}

// actBackward runs ActBackward, in parallel chunks when ex has workers.
func (ex *exec) actBackward(act Activation, dinp, dout, inp []float32) {
	if ex.reference() {
		actBackwardRef(act, dinp, dout, inp)
		return
	}
	ex.runAct(actJob{kind: actBack, act: act, out: dinp[:len(inp)], dout: dout[:len(inp)], inp: inp})
}

// keepsActGrad reports whether actForwardKeep of act leaves f'(x) in place
// of its input, so that actBackwardKept is a multiplication: GELU on the
// fast path (its derivative shares the forward's erf; computing it again
// in backward cost a second one).
func (ex *exec) keepsActGrad(act Activation) bool { return act == GELU && !ex.reference() }

// actForwardKeep sets out = f(inp) and, when keepsActGrad(act), inp =
// f'(inp); otherwise it is actForward.
func (ex *exec) actForwardKeep(act Activation, out, inp []float32) {
	if !ex.keepsActGrad(act) {
		ex.actForward(act, out, inp)
		return
	}
	ex.runAct(actJob{kind: actFwdGrad, act: act, out: out[:len(inp)], inp: inp})
}

// actBackwardKept sets dinp = f'(x)·dout from what actForwardKeep left in
// kept: f'(x) when keepsActGrad(act), else x (then it is actBackward into
// a cleared dinp).
func (ex *exec) actBackwardKept(act Activation, dinp, dout, kept []float32) {
	if !ex.keepsActGrad(act) {
		clear(dinp)
		ex.actBackward(act, dinp, dout, kept)
		return
	}
	ex.runAct(actJob{kind: actBackMul, act: act, out: dinp[:len(kept)], dout: dout[:len(kept)], inp: kept})
}
