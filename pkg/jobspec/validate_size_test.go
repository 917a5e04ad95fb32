package jobspec

import (
	"strings"
	"testing"
)

// Specs that describe a model no machine can allocate are refused at
// validation (they used to be accepted at submit and crash every worker in
// the model builder with "makeslice: len out of range" or an OOM kill).
func TestValidateRefusesModelsNoWorkerCanHold(t *testing.T) {
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{[]string{"model.n_embd=1000000000"}, "model.n_embd: 1000000000 is larger than"},
		{[]string{"model.n_embd=65536", "model.n_layer=48"}, "parameters is more than"},
		{[]string{"model.block_size=4000000"}, "model.block_size: 4000000 is larger than"},
		{[]string{"model.n_layer=100000"}, "model.n_layer: 100000 is larger than"},
	} {
		s, err := Override(Default(), tc.sets)
		if err == nil {
			err = s.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want one containing %q", tc.sets, err, tc.want)
		}
	}
	// A large model that some machine can hold is still a valid spec: whether
	// it fits is the worker's memory check, not validation.
	s, err := Override(Default(), []string{"model.n_embd=4096", "model.n_layer=48", "model.n_head=32"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("GPT of 48 layers × 4096: %v, want valid", err)
	}
}
