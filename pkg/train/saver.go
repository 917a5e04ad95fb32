package train

import (
	"sync"

	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
)

// saver lets checkpoints be written off the step loop. It owns staging
// buffers for one snapshot of the parameters and optimizer state, reused
// from save to save (3 × the shard's floats, allocated on the first save),
// and admits one save at a time: the buffers belong to the background
// writer from begin to end. The zero value is ready to use.
type saver struct {
	mu       sync.Mutex
	busy     bool
	inFlight sync.WaitGroup

	params, m, v []float32
}

// begin reserves the saver for one save; false while another is in flight.
func (s *saver) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return false
	}
	s.busy = true
	s.inFlight.Add(1)
	return true
}

// end releases the saver reserved by begin.
func (s *saver) end() {
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
	s.inFlight.Done()
}

// wait blocks until no save is in flight.
func (s *saver) wait() { s.inFlight.Wait() }

// warm sizes the staging buffers for a replica and writes them once, at a
// generation's start, so the first save's step does not pay for the
// allocation and page faults (29 ms against 1 ms on baby GPT). A save still
// in flight from the previous generation owns the buffers: then warm does
// nothing and that save's step pays.
func (s *saver) warm(params, m, v []float32) {
	if !s.begin() {
		return
	}
	defer s.end()
	s.params, s.m, s.v = snapshot(s.params, params), snapshot(s.m, m), snapshot(s.v, v)
}

// stage copies the shard's live parameters and optimizer moments into the
// staging buffers and points the shard at the copies, so training may go on
// changing the live ones while the copy is written.
func (s *saver) stage(sh *ckpt.Shard) {
	s.params = snapshot(s.params, sh.Data)
	s.m = snapshot(s.m, sh.Optim.M)
	s.v = snapshot(s.v, sh.Optim.V)
	sh.Data, sh.Optim.M, sh.Optim.V = s.params, s.m, s.v
}

// snapshot copies src into buf, growing buf only when it is too small.
func snapshot(buf, src []float32) []float32 {
	if cap(buf) < len(src) {
		buf = make([]float32, len(src))
	}
	buf = buf[:len(src)]
	copy(buf, src)
	return buf
}
