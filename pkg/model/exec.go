package model

// exec is how a model's layers run: the worker pool for parallel loops and
// whether to use the plain reference loops instead of the fast kernels
// (tests compare the two). The parallel loops' jobs live here so that
// handing them to the pool allocates nothing. A nil *exec means "fast
// kernels on the calling goroutine"; that is what the exported layer
// methods use.
type exec struct {
	pool    *workers
	started bool // pool has been set up (GPT.SetThreads)
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

// actJob is ActForward (back false) or ActBackward over chunks of actChunk elements.
type actJob struct {
	act            Activation
	out, inp, dout []float32
	back           bool
}

func (j *actJob) run(i, _ int) {
	lo, hi := i*actChunk, min((i+1)*actChunk, len(j.inp))
	if j.back {
		actBackward(j.act, j.out[lo:hi], j.dout[lo:hi], j.inp[lo:hi])
	} else {
		actForward(j.act, j.out[lo:hi], j.inp[lo:hi])
	}
}

// actForward runs ActForward, in parallel chunks when ex has workers.
func (ex *exec) actForward(act Activation, out, inp []float32) {
	switch {
	case ex.reference():
		actForwardRef(act, out, inp)
	case ex.workers() == nil || len(inp) < 2*actChunk:
		actForward(act, out, inp)
	default:
		ex.act = actJob{act: act, out: out[:len(inp)], inp: inp}
		ex.pool.For((len(inp)+actChunk-1)/actChunk, &ex.act)
		ex.act = actJob{}
	}
}

// actBackward runs ActBackward, in parallel chunks when ex has workers.
func (ex *exec) actBackward(act Activation, dinp, dout, inp []float32) {
	switch {
	case ex.reference():
		actBackwardRef(act, dinp, dout, inp)
	case ex.workers() == nil || len(inp) < 2*actChunk:
		actBackward(act, dinp, dout, inp)
	default:
		ex.act = actJob{act: act, out: dinp[:len(inp)], dout: dout[:len(inp)], inp: inp, back: true}
		ex.pool.For((len(inp)+actChunk-1)/actChunk, &ex.act)
		ex.act = actJob{}
	}
}
