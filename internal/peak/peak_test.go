package peak

import (
	"errors"
	"testing"
	"time"
)

// The loop does the FLOPs it claims: its rate on one thread lies between
// one FMA vector per 4 cycles at 0.5 GHz and two per cycle at 6 GHz.
func TestMeasureIsPlausible(t *testing.T) {
	flops, isa, err := Measure(1, 50*time.Millisecond)
	if errors.Is(err, ErrNoFMA) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	lanes := 16.0 // fp32 lanes, AVX-512
	if isa != "AVX-512" {
		lanes = 8
	}
	lo, hi := 2*lanes*0.5e9/4, 2*lanes*2*6e9
	if flops < lo || flops > hi {
		t.Errorf("%s: %.1f GFLOP/s on one thread, outside [%.1f, %.1f]", isa, flops/1e9, lo/1e9, hi/1e9)
	}
}
