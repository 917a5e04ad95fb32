package jobspec

import (
	"errors"
	"fmt"

	model "github.com/ringmaster-ml/ringmaster/pkg/model/config"
)

// Layout is where a spec runs, as far as memory is concerned.
type Layout struct {
	DP, TP int // data- and tensor-parallel degrees (0 means 1)
	// Lanes is the number of replicas a worker (or ringctl train) runs its
	// batch rows on (0 means 1): each has its own gradients and activations.
	Lanes int
	// VocabSize is used when the spec's model.vocab_size is 0 (taken from
	// the tokenizer at start).
	VocabSize int
	// OneProcess is ringctl train: no worker, so no staging copy for
	// background checkpoint saves.
	OneProcess bool
}

// Estimate is the parameter count of a spec's model and the memory one
// worker needs to train it, in bytes (float32 everywhere).
type Estimate struct {
	Params        int64 // the whole model's parameters
	RankParams    int64 // parameters one TP rank holds
	ParamBytes    int64 // weights
	GradBytes     int64 // gradients, one buffer per lane
	OptimBytes    int64 // AdamW's two moments (split over DP under ZeRO-1)
	ActivBytes    int64 // saved activations and backward scratch, all lanes
	CkptBytes     int64 // staging copy of weights and optimizer state for background saves (checkpoint.interval > 0)
	RowsPerLane   int   // batch rows one lane runs per micro-step
	Lanes         int   // lanes that have rows
	TotalBytes    int64 // everything above
	ApproxActives bool  // activations use the GPT formula (BERT, encdec): ± a block's worth
}

// EstimateMemory computes s's parameter count and one worker's memory under
// layout l. The parameter counts are exact (they mirror the model's layout);
// activations are exact for GPT (they mirror its buffers) and close for BERT
// and the encoder–decoder. Heap overhead (Go's GC target, the dataset) is not
// included: see Fits.
func EstimateMemory(s Spec, l Layout) (Estimate, error) {
	c := s.Model.WithDefaults()
	if c.VocabSize == 0 {
		c.VocabSize = l.VocabSize
	}
	if c.VocabSize < 1 {
		return Estimate{}, errors.New("estimate: model.vocab_size is 0 and the layout gives no vocabulary size; set model.vocab_size")
	}
	dp, tp, lanes := max(l.DP, 1), max(l.TP, 1), max(l.Lanes, 1)
	if c.NHead%tp != 0 || c.NHidden%tp != 0 {
		return Estimate{}, fmt.Errorf("estimate: parallel.tp %d does not divide n_head %d and n_hidden %d", tp, c.NHead, c.NHidden)
	}
	full, rank := paramCounts(c, 1), paramCounts(c, tp)
	rows := (s.Train.BatchSize + dp - 1) / dp // the first ranks take one more row
	lanes = min(lanes, rows)
	perLane := (rows + lanes - 1) / lanes
	e := Estimate{Params: full, RankParams: rank, RowsPerLane: perLane, Lanes: lanes}
	e.ParamBytes = 4 * rank
	e.GradBytes = 4 * rank * int64(lanes)
	e.OptimBytes = 8 * rank
	if s.Parallel.ZeRO1 {
		e.OptimBytes = (e.OptimBytes + int64(dp) - 1) / int64(dp)
	}
	e.ActivBytes = 4 * activationFloats(c, perLane, c.BlockSize, tp, s.Train.Recompute) * int64(lanes)
	e.ApproxActives = c.Arch != model.ArchGPT
	if s.Checkpoint.Interval > 0 && !l.OneProcess {
		e.CkptBytes = e.ParamBytes + e.OptimBytes
	}
	e.TotalBytes = e.ParamBytes + e.GradBytes + e.OptimBytes + e.ActivBytes + e.CkptBytes
	return e, nil
}

// paramCounts is the number of parameters one of tp ranks holds
// (tp 1: the whole model), following the builders in pkg/model: column- and
// row-parallel matrices are split, embeddings, LayerNorms and row-parallel
// biases are replicated.
func paramCounts(c model.Config, tp int) int64 {
	C, H, V, T := int64(c.NEmbd), int64(c.NHidden), int64(c.VocabSize), int64(c.BlockSize)
	t := int64(tp)
	ln := func(bias bool) int64 {
		if bias {
			return 2 * C
		}
		return C
	}
	// column(in, out, bias): out/t columns; row(in, out, bias): in/t rows, full bias.
	col := func(in, out int64, bias bool) int64 {
		n := in * out / t
		if bias {
			n += out / t
		}
		return n
	}
	row := func(in, out int64, bias bool) int64 {
		n := in / t * out
		if bias {
			n += out
		}
		return n
	}
	switch c.Arch {
	case model.ArchGPT:
		b := c.Bias
		block := 2*ln(b) + col(C, 3*C, b) + row(C, C, b) + col(C, H, b) + row(H, C, b)
		return V*C + T*C + int64(c.NLayer)*block + ln(b)
	case model.ArchBERT:
		layer := 3*col(C, C, true) + row(C, C, true) + 2*ln(true) + col(C, H, true) + row(H, C, true)
		n := (V+T+int64(c.TypeVocabSize))*C + ln(true) + int64(c.NLayer)*layer
		n += C*C + C + ln(true) + V // mlm_dense, mlm_LayerNorm, mlm_bias (decoder tied to word embeddings)
		if k := int64(c.NClasses); k > 0 {
			n += C*C + C + C*k + k // pooler, classifier
		}
		return n
	case model.ArchEncDec:
		attn := 3*col(C, C, true) + row(C, C, true) + ln(true)
		ffn := col(C, H, true) + row(H, C, true) + ln(true)
		return 2*V*C + int64(c.NLayer)*(attn+ffn) + int64(c.NDecLayer)*(2*attn+ffn)
	}
	return 0
}

// activationFloats is the float32 count of one replica's activation and
// backward buffers for B rows of T positions (GPT's ensure, pkg/model/gpt.go;
// tokens and targets are int32, counted as floats). Other architectures are
// priced as a GPT of the same shape, the encoder–decoder's decoder layers at
// 1.5 blocks (cross-attention).
func activationFloats(c model.Config, B, T, tp int, recompute string) int64 {
	N, NTT := int64(B*T), int64(B*T*T)
	C, V := int64(c.NEmbd), int64(c.VocabSize)
	Cl, Hl, NHl := C/int64(tp), int64(c.NHidden/tp), int64(c.NHead/tp)
	perLayer := N*(6*C+4*Cl+2*Hl+4) + NTT*NHl
	global := N*C + N*C + 2*N + 3*N*V + 3*N*C + 4*N*Cl + 2*N*Hl + 2*N
	if c.Dropout > 0 {
		perLayer += 2*N*C + NTT*NHl
		global += N * C
	}
	layers := int64(c.NLayer)
	if c.Arch == model.ArchEncDec {
		layers = int64(c.NLayer) + int64(c.NDecLayer)*3/2
	}
	switch recompute { // GPT only (jobspec refuses the others)
	case RecomputeMLP: // one (N, n_hidden) pair shared by every block
		return layers*perLayer - (layers-1)*2*N*Hl + global
	case RecomputeBlock: // one block's work space and every block's output
		return perLayer + layers*N*C + global
	}
	return layers*perLayer + global
}

// Fits reports whether e fits in avail bytes of memory. The estimate counts
// live buffers; a Go process's heap grows to about twice its live size
// between collections (GOGC=100), so twice the estimate is asked for
// (ringctl train, baby GPT 6×6×384, block 256, 2 lanes: estimate 878 MiB,
// peak RSS 1506 MiB). The error names the spec fields that shrink the
// biggest part.
func (e Estimate) Fits(avail int64) error {
	need := 2 * e.TotalBytes
	if need <= avail {
		return nil
	}
	hint := "train.batch_size or model.block_size (activations), or use more workers"
	if e.ActivBytes < e.ParamBytes+e.GradBytes+e.OptimBytes {
		hint = "model.n_layer / model.n_embd / model.vocab_size (weights, gradients, optimizer), or raise parallel.tp, or set parallel.zero1"
	}
	return fmt.Errorf("memory: this job needs about %s per worker (%s), %s available; lower %s",
		gib(need), e.Breakdown(), gib(avail), hint)
}

// Breakdown is a one-line summary: "weights 0.30 GiB, grads 0.61 GiB (2 lanes), …".
func (e Estimate) Breakdown() string {
	return fmt.Sprintf("weights %s, gradients %s (%d lanes), optimizer %s, activations %s (%d rows/lane), checkpoint staging %s",
		gib(e.ParamBytes), gib(e.GradBytes), e.Lanes, gib(e.OptimBytes), gib(e.ActivBytes), e.RowsPerLane, gib(e.CkptBytes))
}

func gib(b int64) string {
	if b < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}
