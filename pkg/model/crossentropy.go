package model

import (
	"math"

	"github.com/ringmaster-ml/ringmaster/pkg/vecmath"
)

// CrossEntropy is softmax cross-entropy over V classes for N rows, with
// targets equal to IgnoreIndex contributing nothing. The loss is
// Σ(−log p[target]) / denom where denom is Batch.LossDenom semantics: the
// given denominator when > 0, else the number of non-ignored targets. With no
// counted target and denom 0 the loss is 0 and so is the gradient.
type CrossEntropy struct {
	V int

	ref bool // use forwardRef (tests compare the two)
}

// Forward computes probs (N,V) from logits (N,V) (saved for Backward) and
// returns the loss and the denominator it used. The softmax runs on
// vecmath's float32 exp; forwardRef is the float64 reference.
func (ce CrossEntropy) Forward(probs, logits []float32, targets []int32, n int, lossDenom float32) (loss, denom float32) {
	if ce.ref {
		return ce.forwardRef(probs, logits, targets, n, lossDenom)
	}
	V := ce.V
	var sum float64
	count := 0
	for i := 0; i < n; i++ {
		l := logits[i*V : (i+1)*V]
		pr := probs[i*V : (i+1)*V]
		mx := vecmath.Max(l)
		z := vecmath.ExpSum(pr, l, mx)
		vecmath.Scale(pr, 1/z)
		if t := targets[i]; t != IgnoreIndex {
			sum += math.Log(float64(z)) - float64(l[t]-mx)
			count++
		}
	}
	return ceLoss(sum, count, lossDenom)
}

// ceLoss is sum/denom with Forward's choice of denominator.
func ceLoss(sum float64, count int, lossDenom float32) (loss, denom float32) {
	denom = lossDenom
	if denom <= 0 {
		denom = float32(count)
	}
	if denom == 0 {
		return 0, 0
	}
	return float32(sum / float64(denom)), denom
}

// forwardRef is the reference Forward (float64 exp and sums).
func (ce CrossEntropy) forwardRef(probs, logits []float32, targets []int32, n int, lossDenom float32) (loss, denom float32) {
	V := ce.V
	var sum float64
	count := 0
	for i := 0; i < n; i++ {
		l := logits[i*V : (i+1)*V]
		pr := probs[i*V : (i+1)*V]
		mx := l[0]
		for _, v := range l[1:] {
			mx = max(mx, v)
		}
		var z float64
		for j, v := range l {
			e := math.Exp(float64(v - mx))
			pr[j] = float32(e)
			z += e
		}
		inv := 1 / z
		for j := range pr {
			pr[j] = float32(float64(pr[j]) * inv)
		}
		if t := targets[i]; t != IgnoreIndex {
			sum += math.Log(z) - float64(l[t]-mx)
			count++
		}
	}
	return ceLoss(sum, count, lossDenom)
}

// Backward accumulates dlogits (N,V) += dloss·(probs − onehot(target))/denom
// for every non-ignored row; ignored rows get nothing.
func (ce CrossEntropy) Backward(dlogits, probs []float32, targets []int32, n int, denom, dloss float32) {
	if denom == 0 {
		return
	}
	V := ce.V
	s := dloss / denom
	for i := 0; i < n; i++ {
		t := targets[i]
		if t == IgnoreIndex {
			continue
		}
		d := dlogits[i*V : (i+1)*V]
		for j, p := range probs[i*V : (i+1)*V] {
			d[j] += s * p
		}
		d[t] -= s
	}
}
