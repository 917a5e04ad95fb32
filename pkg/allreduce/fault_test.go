package allreduce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// peerFailure asserts err is a failure attributed to a peer (closed, timed
// out or aborted by the cascade), not a hang cut short by the test's context.
func peerFailure(t *testing.T, r int, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("rank %d: collective succeeded without its peer", r)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("rank %d: hung until the test's deadline: %v", r, err)
	}
	var pe *PeerError
	if !errors.As(err, &pe) || !(errors.Is(err, ErrPeerClosed) || errors.Is(err, ErrPeerTimeout) || errors.Is(err, ErrClosed)) {
		t.Fatalf("rank %d: error does not name a failed peer: %v", r, err)
	}
}

// TestKillPeerMidCollective kills one worker (its gRPC server, bulk listener
// and group) while every rank loops over large all-reduces; every other rank
// must fail with an error naming a peer, not hang.
func TestKillPeerMidCollective(t *testing.T) {
	for _, mode := range []Mode{ModeBulk, ModeGRPC, ModeTCP} {
		t.Run([]string{"bulk", "grpc", "tcp"}[mode], func(t *testing.T) {
			const n, victim = 4, 2
			g, ws := newGRPCGroup(t, n, mode, 5*time.Second, Options{ChunkBytes: 16 << 10})
			ctx := testCtx(t)
			var done atomic.Int64
			errs := make([]error, n)
			var wg sync.WaitGroup
			for r, c := range g.comms {
				wg.Go(func() {
					buf := make([]float32, 1<<18)
					for {
						if err := c.AllReduce(ctx, buf, Sum); err != nil {
							errs[r] = err
							return
						}
						done.Add(1)
					}
				})
			}
			// Kill once the group is demonstrably running.
			deadline := time.Now().Add(20 * time.Second)
			for done.Load() < 3*n && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			ws[victim].kill()
			wg.Wait()
			for r := range n {
				t.Logf("rank %d: %v", r, errs[r])
				if r != victim {
					peerFailure(t, r, errs[r])
				}
			}
			// The group stays broken.
			if err := g.comms[0].Barrier(ctx); err == nil {
				t.Fatal("barrier after failure succeeded")
			}
		})
	}
}

// TestStalledPeerTimesOut: a rank that never calls the collective makes its
// successor fail with ErrPeerTimeout naming it; the others fail too.
func TestStalledPeerTimesOut(t *testing.T) {
	const n, stalled = 4, 1
	g, _ := newInprocGroup(t, n, 200*time.Millisecond, Options{ChunkBytes: 256})
	ctx := testCtx(t)
	errs := g.each(func(r int, c *Communicator) error {
		if r == stalled {
			return nil
		}
		return c.AllReduce(ctx, make([]float32, 5000), Sum)
	})
	for r := range n {
		if r != stalled {
			peerFailure(t, r, errs[r])
		}
	}
	var pe *PeerError
	if !errors.As(errs[stalled+1], &pe) || pe.Rank != stalled || !errors.Is(errs[stalled+1], ErrPeerTimeout) {
		t.Fatalf("rank %d: want a timeout naming rank %d, got %v", stalled+1, stalled, errs[stalled+1])
	}
}

// TestStalledPeerTimesOutGRPC is the same over the peer service.
func TestStalledPeerTimesOutGRPC(t *testing.T) {
	const n, stalled = 3, 0
	g, _ := newGRPCGroup(t, n, ModeBulk, 300*time.Millisecond, Options{})
	ctx := testCtx(t)
	errs := g.each(func(r int, c *Communicator) error {
		if r == stalled {
			return nil
		}
		return c.AllReduce(ctx, make([]float32, 100000), Avg)
	})
	for r := range n {
		if r != stalled {
			peerFailure(t, r, errs[r])
		}
	}
}

func TestStaleGenerationFrameRejected(t *testing.T) {
	g, net := newInprocGroup(t, 2, 5*time.Second, Options{})
	ctx := testCtx(t)
	c0 := g.comms[0]
	// A frame of generation 6 sits in rank 1's inbox where seq 0 is expected.
	stale := Header{Job: JobHash("job-t"), Generation: 6, Seq: 0, Chunk: 0, Kind: KindAllReduce, Total: 3}
	net.Inject(0, 1, stale, asBytes([]float32{1, 2, 3}))
	buf := []float32{10, 20, 30}
	err := g.comms[1].AllReduce(ctx, buf, Sum)
	if !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("got %v, want ErrStaleGeneration", err)
	}
	if buf[0] != 10 || buf[1] != 20 || buf[2] != 30 {
		t.Fatalf("stale frame was mixed in: %v", buf)
	}
	_ = c0
}

func TestUnexpectedSequenceRejected(t *testing.T) {
	g, net := newInprocGroup(t, 2, 5*time.Second, Options{})
	ctx := testCtx(t)
	net.Inject(0, 1, Header{Job: JobHash("job-t"), Generation: 7, Seq: 5, Kind: KindAllReduce, Total: 1}, asBytes([]float32{1}))
	if err := g.comms[1].AllReduce(ctx, []float32{1}, Sum); !errors.Is(err, ErrUnexpectedFrame) {
		t.Fatalf("got %v, want ErrUnexpectedFrame", err)
	}
}

// TestStaleGenerationLinkRejected: a worker still at generation 6 cannot
// reach a worker that has joined generation 7, and cannot join 6 there.
func TestStaleGenerationLinkRejected(t *testing.T) {
	a, b := startWorker(t, true), startWorker(t, true)
	peers := []string{a.addr, b.addr}
	trA, err := a.srv.Join(GroupConfig{Job: "j", Generation: 7, Rank: 0, Peers: peers, PeerTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer trA.Close()
	if _, err := a.srv.Join(GroupConfig{Job: "j", Generation: 6, Rank: 0, Peers: peers}); !errors.Is(err, ErrStaleGeneration) {
		t.Fatalf("join of an older generation: got %v, want ErrStaleGeneration", err)
	}
	for _, mode := range []Mode{ModeBulk, ModeGRPC} {
		trB, err := b.srv.Join(GroupConfig{Job: "j", Generation: 6, Rank: 1, Peers: peers, PeerTimeout: 2 * time.Second, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		cB := New(trB, Options{})
		err = cB.AllReduce(testCtx(t), []float32{1, 2}, Sum)
		if !errors.Is(err, ErrStaleGeneration) {
			t.Fatalf("mode %d: stale rank's collective: got %v, want ErrStaleGeneration", mode, err)
		}
		cB.Close()
		b.srv.mu.Lock() // let the same server join generation 6 again for the next mode
		delete(b.srv.ended, GroupID{Job: "j", Generation: 6})
		b.srv.mu.Unlock()
	}
}

func TestMismatchedSizes(t *testing.T) {
	for _, small := range []int{-1, 1 << 20} {
		g, _ := newInprocGroup(t, 3, 5*time.Second, Options{ChunkBytes: 64, SmallBytes: small})
		ctx := testCtx(t)
		errs := g.each(func(r int, c *Communicator) error {
			l := 100
			if r == 1 {
				l = 101
			}
			return c.AllReduce(ctx, make([]float32, l), Sum)
		})
		for r, err := range errs {
			if err == nil {
				t.Fatalf("small=%d rank %d: mismatched sizes not detected", small, r)
			}
		}
		if !errors.Is(errs[1], ErrMismatch) && !errors.Is(errs[2], ErrMismatch) {
			t.Fatalf("small=%d: no ErrMismatch: %v", small, errs)
		}
	}
	// Different collectives at the same sequence number.
	g, _ := newInprocGroup(t, 2, 5*time.Second, Options{})
	ctx := testCtx(t)
	errs := g.each(func(r int, c *Communicator) error {
		if r == 0 {
			return c.AllReduce(ctx, make([]float32, 4), Sum)
		}
		return c.Broadcast(ctx, make([]float32, 4), 0)
	})
	if !errors.Is(errs[0], ErrMismatch) && !errors.Is(errs[1], ErrMismatch) {
		t.Fatalf("different collectives not detected: %v", errs)
	}
}

// TestCancelAborts: cancelling the context of a collective whose peers never
// arrive returns promptly with the context's error; goleak (TestMain) checks
// that nothing is left running.
func TestCancelAborts(t *testing.T) {
	for _, name := range []string{"inproc", "bulk"} {
		t.Run(name, func(t *testing.T) {
			var g *group
			if name == "inproc" {
				g, _ = newInprocGroup(t, 3, time.Hour, Options{})
			} else {
				g, _ = newGRPCGroup(t, 3, ModeBulk, time.Hour, Options{})
			}
			ctx, cancel := context.WithCancel(context.Background())
			h := g.comms[0].AllReduceAsync(ctx, make([]float32, 1<<16), Sum)
			queued := g.comms[0].AllReduceAsync(context.Background(), make([]float32, 10), Sum)
			cancel()
			if err := h.Wait(); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if err := queued.Wait(); err == nil {
				t.Fatal("collective queued behind an aborted one succeeded")
			}
			g.close()
			if err := g.comms[0].AllReduce(context.Background(), []float32{1}, Sum); !errors.Is(err, ErrClosed) {
				t.Fatalf("after Close: got %v, want ErrClosed", err)
			}
		})
	}
}
