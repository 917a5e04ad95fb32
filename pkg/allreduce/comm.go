package allreduce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Communicator; the zero value is usable.
type Options struct {
	// ChunkBytes is the ring's pipeline granularity (default 512 KiB).
	ChunkBytes int
	// SmallBytes: an all-reduce whose buffer holds at most this many bytes
	// uses the direct exchange instead of the ring (default 64 KiB; negative
	// disables the direct path).
	SmallBytes int
	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
}

const (
	defaultChunkBytes = 512 << 10
	defaultSmallBytes = 64 << 10
)

// Communicator runs collectives for one group over a Transport. Collectives
// are executed one at a time in the order they are issued (synchronous or
// asynchronous), which must be the same order on every rank. It is safe for
// concurrent use, but concurrent callers then decide that order.
type Communicator struct {
	tr         Transport
	id         GroupID
	job        uint64
	rank, size int
	chunkBytes int
	smallBytes int
	m          *metrics
	log        *slog.Logger

	mu     sync.Mutex
	seq    uint64
	tail   chan struct{} // closed when the last issued collective finished
	err    error         // sticky: the failure that broke the group
	closed bool
	async  sync.WaitGroup // asynchronous collectives in flight

	scratch []float32 // used by the running collective only
}

// New returns a Communicator over tr. It takes ownership of tr: Close closes it.
func New(tr Transport, opts Options) *Communicator {
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = defaultChunkBytes
	}
	if opts.SmallBytes == 0 {
		opts.SmallBytes = defaultSmallBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tail := make(chan struct{})
	close(tail)
	id := tr.Group()
	return &Communicator{
		tr:         tr,
		id:         id,
		job:        JobHash(id.Job),
		rank:       tr.Rank(),
		size:       tr.Size(),
		chunkBytes: opts.ChunkBytes &^ 3,
		smallBytes: opts.SmallBytes,
		m:          newMetrics(opts.Registerer),
		log:        opts.Logger.With("job", id.Job, "generation", id.Generation, "rank", tr.Rank()),
		tail:       tail,
	}
}

// Rank is this process's rank in the group.
func (c *Communicator) Rank() int { return c.rank }

// Size is the number of ranks in the group.
func (c *Communicator) Size() int { return c.size }

// Group names the group.
func (c *Communicator) Group() GroupID { return c.id }

// Err returns the failure that broke the group, or nil.
func (c *Communicator) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close aborts collectives in flight, waits for asynchronous ones to finish
// and closes the transport.
func (c *Communicator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.err == nil {
		c.err = ErrClosed
	}
	c.mu.Unlock()
	err := c.tr.Close()
	c.async.Wait()
	return err
}

// fail records err as the group's failure (first one wins) and closes the
// transport so that peers waiting on this rank fail fast.
func (c *Communicator) fail(err error) {
	c.mu.Lock()
	first := c.err == nil
	if first {
		c.err = err
	}
	c.mu.Unlock()
	if first {
		c.m.peerError(err)
		c.log.Warn("collective failed; group broken", "err", err)
		_ = c.tr.Close()
	}
}

// Handle is an asynchronous collective in flight.
type Handle struct {
	done chan struct{}
	err  error
}

// Wait blocks until the collective finished and returns its error. The
// collective's own context bounds it.
func (h *Handle) Wait() error {
	<-h.done
	return h.err
}

// Done is closed when the collective finished.
func (h *Handle) Done() <-chan struct{} { return h.done }

// ticket is a collective's place in the group's order.
type ticket struct {
	seq        uint64
	prev, done chan struct{}
}

func (c *Communicator) enqueue(async bool) (ticket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ticket{}, ErrClosed
	}
	if async {
		c.async.Add(1) // under mu: Close sets closed under mu before it waits
	}
	t := ticket{seq: c.seq, prev: c.tail, done: make(chan struct{})}
	c.seq++
	c.tail = t.done
	return t, nil
}

type collective func(ctx context.Context, seq uint64) error

// execute runs fn in its turn. A failure or cancellation breaks the group.
func (c *Communicator) execute(ctx context.Context, t ticket, kind Kind, fn collective) error {
	defer close(t.done)
	select {
	case <-t.prev:
	case <-ctx.Done():
		err := fmt.Errorf("allreduce: %v seq %d cancelled while queued: %w", kind, t.seq, ctx.Err())
		c.fail(err)
		return err
	}
	c.mu.Lock()
	broken := c.err
	c.mu.Unlock()
	if broken != nil {
		if errors.Is(broken, ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("allreduce: group %s/%d broken by an earlier failure: %w", c.id.Job, c.id.Generation, broken)
	}
	start := time.Now()
	if err := fn(ctx, t.seq); err != nil {
		err = fmt.Errorf("allreduce: %v seq %d on rank %d: %w", kind, t.seq, c.rank, err)
		c.fail(err)
		return err
	}
	c.m.duration.WithLabelValues(kind.String()).Observe(time.Since(start).Seconds())
	return nil
}

func (c *Communicator) run(ctx context.Context, kind Kind, fn collective) error {
	t, err := c.enqueue(false)
	if err != nil {
		return err
	}
	return c.execute(ctx, t, kind, fn)
}

func (c *Communicator) runAsync(ctx context.Context, kind Kind, fn collective) *Handle {
	h := &Handle{done: make(chan struct{})}
	t, err := c.enqueue(true)
	if err != nil {
		h.err = err
		close(h.done)
		return h
	}
	go func() {
		defer c.async.Done()
		h.err = c.execute(ctx, t, kind, fn)
		close(h.done)
	}()
	return h
}

// AllReduce reduces buf in place across the group: on return every rank holds
// the same (bit-identical) sum or average.
func (c *Communicator) AllReduce(ctx context.Context, buf []float32, op Op) error {
	return c.run(ctx, KindAllReduce, c.allReduce(buf, op))
}

// AllReduceAsync issues AllReduce and returns at once; buf must not be touched
// until the handle is done.
func (c *Communicator) AllReduceAsync(ctx context.Context, buf []float32, op Op) *Handle {
	return c.runAsync(ctx, KindAllReduce, c.allReduce(buf, op))
}

// ReduceScatter reduces buf across the group; on return this rank's part
// (Part(len(buf), Size(), Rank())) holds the reduced values and the rest of
// buf holds partial sums.
func (c *Communicator) ReduceScatter(ctx context.Context, buf []float32, op Op) error {
	return c.run(ctx, KindReduceScatter, c.reduceScatter(buf, op))
}

// ReduceScatterAsync is the asynchronous ReduceScatter.
func (c *Communicator) ReduceScatterAsync(ctx context.Context, buf []float32, op Op) *Handle {
	return c.runAsync(ctx, KindReduceScatter, c.reduceScatter(buf, op))
}

// AllGather fills buf with every rank's part: rank i contributes
// buf[Part(len(buf), Size(), i)].
func (c *Communicator) AllGather(ctx context.Context, buf []float32) error {
	return c.run(ctx, KindAllGather, c.allGather(buf))
}

// AllGatherAsync is the asynchronous AllGather.
func (c *Communicator) AllGatherAsync(ctx context.Context, buf []float32) *Handle {
	return c.runAsync(ctx, KindAllGather, c.allGather(buf))
}

// Broadcast copies root's buf into every rank's buf.
func (c *Communicator) Broadcast(ctx context.Context, buf []float32, root int) error {
	return c.run(ctx, KindBroadcast, c.broadcast(buf, root))
}

// BroadcastAsync is the asynchronous Broadcast.
func (c *Communicator) BroadcastAsync(ctx context.Context, buf []float32, root int) *Handle {
	return c.runAsync(ctx, KindBroadcast, c.broadcast(buf, root))
}

// Barrier returns once every rank has entered it.
func (c *Communicator) Barrier(ctx context.Context) error {
	return c.run(ctx, KindBarrier, func(ctx context.Context, seq uint64) error {
		return c.direct(ctx, seq, KindBarrier, nil, Sum)
	})
}

func (c *Communicator) allReduce(buf []float32, op Op) collective {
	return func(ctx context.Context, seq uint64) error {
		if c.size == 1 {
			return nil // the average of one is itself
		}
		if len(buf)*4 <= c.smallBytes {
			return c.direct(ctx, seq, KindAllReduce, buf, op)
		}
		return c.ring(ctx, seq, KindAllReduce, buf, op, 0, 2*c.size-2)
	}
}

func (c *Communicator) reduceScatter(buf []float32, op Op) collective {
	return func(ctx context.Context, seq uint64) error {
		if c.size == 1 {
			return nil
		}
		return c.ring(ctx, seq, KindReduceScatter, buf, op, 0, c.size-1)
	}
}

func (c *Communicator) allGather(buf []float32) collective {
	return func(ctx context.Context, seq uint64) error {
		if c.size == 1 {
			return nil
		}
		return c.ring(ctx, seq, KindAllGather, buf, Sum, c.size-1, 2*c.size-2)
	}
}

func (c *Communicator) broadcast(buf []float32, root int) collective {
	return func(ctx context.Context, seq uint64) error {
		if root < 0 || root >= c.size {
			return fmt.Errorf("broadcast root %d outside group of %d: %w", root, c.size, ErrMismatch)
		}
		if c.size == 1 {
			return nil
		}
		return c.chain(ctx, seq, buf, root)
	}
}

// header returns the header of chunk of collective seq.
func (c *Communicator) header(seq uint64, kind Kind, total int, chunk int) Header {
	return Header{Job: c.job, Generation: c.id.Generation, Seq: seq, Chunk: uint32(chunk), Kind: kind, Total: uint64(total)}
}

func (c *Communicator) send(ctx context.Context, to int, h Header, data []float32) error {
	b := asBytes(data)
	if err := c.tr.Send(ctx, to, h, b); err != nil {
		return err
	}
	c.m.sent.add(h.Kind, c.linkKind(to, true), len(b))
	return nil
}

func (c *Communicator) recv(ctx context.Context, from int, h Header, dst []float32) error {
	b := asBytes(dst)
	if err := c.tr.Recv(ctx, from, h, b); err != nil {
		return err
	}
	c.m.received.add(h.Kind, c.linkKind(from, false), len(b))
	return nil
}

// linkKind is the transport label of the link to or from peer.
func (c *Communicator) linkKind(peer int, sending bool) string {
	if lk, ok := c.tr.(linkKinder); ok {
		return lk.LinkKind(peer, sending)
	}
	return ""
}

// scratchBuf returns a scratch buffer of n floats owned by the running collective.
func (c *Communicator) scratchBuf(n int) []float32 {
	if cap(c.scratch) < n {
		c.scratch = make([]float32, n)
	}
	return c.scratch[:n]
}
