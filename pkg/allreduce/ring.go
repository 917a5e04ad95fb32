package allreduce

import (
	"context"
	"sync/atomic"
)

// ring runs steps [s0, s1) of the ring all-reduce on buf: steps 0…n−2 are the
// reduce-scatter (receive a chunk, add it in), steps n−1…2n−3 the all-gather
// (receive a reduced chunk in place). At step s rank r sends part (r−s−1) to
// rank r+1 and receives part (r−s−2) from rank r−1, so that after the
// reduce-scatter rank r owns part r. Every part is cut into nsub chunks, and a
// sender goroutine sends chunk k of a step as soon as the receiver (this
// goroutine) has reduced chunk k of the previous step: sending, receiving and
// reducing overlap. Frames go in ringSchedule's order, which interleaves the
// steps; a frame's header carries its position in that order. With op Avg the owner divides its part before the
// all-gather, so every rank ends with the same bits.
func (c *Communicator) ring(ctx context.Context, seq uint64, kind Kind, buf []float32, op Op, s0, s1 int) error {
	n, r := c.size, c.rank
	right, left := (r+1)%n, (r+n-1)%n
	total := len(buf)
	maxPart := (total + n - 1) / n
	nsub := max(1, (maxPart*4+c.chunkBytes-1)/c.chunkBytes)
	mod := func(x int) int { return ((x % n) + n) % n }
	// span is chunk k of part p.
	span := func(p, k int) (int, int) {
		plo, phi := Part(total, n, p)
		lo, hi := Part(phi-plo, nsub, k)
		return plo + lo, plo + hi
	}
	scratch := c.scratchBuf((maxPart + nsub - 1) / nsub)
	order, pos := ringSchedule(s1-s0, nsub, ringLag)

	// received counts frames received and reduced; sent counts frames sent
	// (both in schedule order).
	var received, sent atomic.Int64
	recvWake, sendWake := make(chan struct{}, 1), make(chan struct{}, 1)

	sendAll := func(ctx context.Context) error {
		for f, fr := range order {
			s, k := s0+fr.step, fr.chunk
			if fr.step > 0 {
				// Chunk k of the part received at the previous step.
				if err := waitFor(ctx, &received, int64(pos[fr.step-1][k]+1), recvWake); err != nil {
					return err
				}
			}
			lo, hi := span(mod(r-s-1), k)
			if err := c.send(ctx, right, c.header(seq, kind, total, f), buf[lo:hi]); err != nil {
				return err
			}
			sent.Store(int64(f + 1))
			notify(sendWake)
		}
		return nil
	}
	recvAll := func(ctx context.Context) error {
		for f, fr := range order {
			s, k := s0+fr.step, fr.chunk
			lo, hi := span(mod(r-s-2), k)
			h := c.header(seq, kind, total, f)
			if s >= n-1 {
				// All-gather: the chunk lands in place. We sent this chunk's
				// old contents n−1 steps ago; that send has causally finished
				// (the data went round the ring), the wait only makes it
				// visible to the race detector.
				if back := fr.step - (n - 1); back >= 0 {
					if err := waitFor(ctx, &sent, int64(pos[back][k]+1), sendWake); err != nil {
						return err
					}
				}
				if err := c.recv(ctx, left, h, buf[lo:hi]); err != nil {
					return err
				}
			} else {
				tmp := scratch[:hi-lo]
				if err := c.recv(ctx, left, h, tmp); err != nil {
					return err
				}
				addTo(buf[lo:hi], tmp)
				if s == n-2 && op == Avg {
					divide(buf[lo:hi], float32(n))
				}
			}
			received.Store(int64(f + 1))
			notify(recvWake)
		}
		return nil
	}
	return duplex(ctx, sendAll, recvAll)
}

// ringLag is how many frames the ring's schedule lets a step run ahead of the
// next (see ringSchedule).
const ringLag = 4

// ringFrame is chunk of the part sent at step s0+step.
type ringFrame struct{ step, chunk int }

// ringSchedule is the order in which the ring sends (and receives) the frames
// of steps × nsub chunks: by chunk + lag·step, the later step first on ties.
// Chunk k of step s depends on chunk k of step s−1, lag positions earlier
// in the key, so a chunk goes on ≈lag frames after it was reduced, while it
// is still in cache, instead of after the rest of its step. Every frame's
// dependencies come before it, so the schedule cannot deadlock, and every
// rank computes the same one. pos[step][chunk] is a frame's position.
func ringSchedule(steps, nsub, lag int) ([]ringFrame, [][]int) {
	order := make([]ringFrame, 0, steps*nsub)
	for key := 0; key < nsub+lag*(steps-1); key++ {
		for st := steps - 1; st >= 0; st-- {
			if k := key - lag*st; k >= 0 && k < nsub {
				order = append(order, ringFrame{st, k})
			}
		}
	}
	pos := make([][]int, steps)
	for st := range pos {
		pos[st] = make([]int, nsub)
	}
	for f, fr := range order {
		pos[fr.step][fr.chunk] = f
	}
	return order, pos
}

// waitFor blocks until v ≥ need; wake is signalled after every change of v.
func waitFor(ctx context.Context, v *atomic.Int64, need int64, wake <-chan struct{}) error {
	for v.Load() < need {
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

func notify(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// duplex runs send in a new goroutine and recv in this one, and waits for
// both; the first failure cancels the other and is the one returned.
func duplex(parent context.Context, send, recv func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		err := send(ctx)
		if err != nil {
			cancel(err)
		}
		done <- err
	}()
	rerr := recv(ctx)
	if rerr != nil {
		cancel(rerr)
	}
	serr := <-done
	if rerr == nil && serr == nil {
		return nil
	}
	return context.Cause(ctx)
}
