package coord

import (
	"context"
	"time"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// KeepSession keeps worker workerID in a session with the current leader
// until ctx ends, and returns ctx's error. It (re)opens the session through
// leader redirects (after a failover, a restart of the coordinator group, a
// network blip), sends beat() every interval, and calls onAssign with every
// assignment received, including the first one after each reconnect.
// onAssign is called from one goroutine at a time and must not block long.
// The worker must be registered first.
func (c *Client) KeepSession(ctx context.Context, workerID string, interval time.Duration,
	beat func() *pb.WorkerMessage, onAssign func(*pb.Assignment)) error {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		hello := beat()
		hello.WorkerId = workerID
		sess, err := c.OpenSession(ctx, hello)
		if err != nil {
			waitCtx(ctx, backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		onAssign(sess.First)
		runSession(ctx, sess, workerID, interval, beat, onAssign)
	}
	return ctx.Err()
}

// runSession heartbeats on one open session until it breaks or ctx ends.
func runSession(ctx context.Context, sess *Session, workerID string, interval time.Duration,
	beat func() *pb.WorkerMessage, onAssign func(*pb.Assignment)) {
	recvDone := make(chan struct{})
	go func() { // owned by runSession: ends when the session closes
		defer close(recvDone)
		for {
			a, err := sess.Recv()
			if err != nil {
				return
			}
			onAssign(a)
		}
	}()
	defer func() { sess.Close(); <-recvDone }()
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-recvDone:
			return
		case <-tk.C:
			m := beat()
			m.WorkerId = workerID
			if err := sess.Send(m); err != nil {
				return
			}
		}
	}
}
