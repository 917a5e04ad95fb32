package jobspec

import (
	"bytes"
	"testing"
)

// FuzzParse: a spec document from a client never panics the parser; one
// that parses round-trips through Marshal, and its memory estimate (which
// the worker checks before allocating) is a positive number of bytes,
// never an overflow.
func FuzzParse(f *testing.F) {
	f.Add(Default().Marshal())
	f.Add([]byte(`{"model": {"n_embd": 1000000000}}`))
	f.Add([]byte("model:\n  n_layer: 2\n  n_embd: 64\ntrain:\n  max_iters: 10\n"))
	f.Add([]byte(`{"parallel": {"tp": 2, "min_workers": 100}}`))
	f.Add([]byte(`{"model": {"n_embdd": 3}}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Parse(doc)
		if err != nil {
			return
		}
		again, err := Parse(s.Marshal())
		if err != nil {
			t.Fatalf("a parsed spec's own Marshal does not parse: %v\n%s", err, s.Marshal())
		}
		if !bytes.Equal(again.Marshal(), s.Marshal()) {
			t.Fatalf("round trip changed the spec:\n%s\n%s", s.Marshal(), again.Marshal())
		}
		e, err := EstimateMemory(s, Layout{DP: 1, TP: s.Parallel.TP, Lanes: 1, VocabSize: 1})
		if err == nil && (e.TotalBytes <= 0 || e.Params <= 0) {
			t.Fatalf("estimate of a valid spec: %+v", e)
		}
	})
}
