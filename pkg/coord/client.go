package coord

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// Client talks to a coordinator group through any of its addresses. It
// follows leader redirects (the TrailerLeader trailer), moves on to the next
// address when one is unreachable, and retries writes only when they were
// certainly not applied (never on TrailerOutcome "unknown" or a timeout),
// until ctx ends. Errors are gRPC statuses. One caveat: a connection that
// breaks after a write was sent also reads as Unavailable and is retried.
type Client struct {
	opts    []grpc.DialOption
	version func() uint64 // credentials version (RedialOnChange); nil: never redial

	mu      sync.Mutex
	addrs   []string
	conns   map[string]*grpc.ClientConn
	madeAt  map[string]uint64  // credentials version each conn was dialed at
	retired []*grpc.ClientConn // replaced after a credentials change; closed by Close
	prefer  string
}

// NewClient returns a client over addrs (no connection is made yet). With
// no options it dials without transport security.
func NewClient(addrs []string, opts ...grpc.DialOption) *Client {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	c := &Client{opts: opts, addrs: append([]string(nil), addrs...), conns: map[string]*grpc.ClientConn{}, madeAt: map[string]uint64{}}
	if len(addrs) > 0 {
		c.prefer = addrs[0]
	}
	return c
}

// RedialOnChange makes every call after a change of version (the TLS
// credentials' tlsauth.Source.Version: a reload after rotation) use a new
// connection, so the coordinators see the new certificate: they check each
// call against their current CA, and a connection keeps the certificate of
// its handshake. Streams already open stay on their old connection until
// they end (a worker's session is not broken by a rotation). Call it before
// the first call. It returns c.
func (c *Client) RedialOnChange(version func() uint64) *Client {
	c.version = version
	return c
}

// Close closes every connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, cc := range c.conns {
		_ = cc.Close()
		delete(c.conns, a)
	}
	for _, cc := range c.retired {
		_ = cc.Close()
	}
	c.retired = nil
	return nil
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var v uint64
	if c.version != nil {
		v = c.version()
	}
	if cc, ok := c.conns[addr]; ok {
		if c.madeAt[addr] == v {
			return cc, nil
		}
		c.retired = append(c.retired, cc)
		delete(c.conns, addr)
	}
	cc, err := grpc.NewClient(addr, c.opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c.conns[addr], c.madeAt[addr] = cc, v
	return cc, nil
}

func (c *Client) next(after string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.addrs) == 0 {
		return after
	}
	for i, a := range c.addrs {
		if a == after {
			return c.addrs[(i+1)%len(c.addrs)]
		}
	}
	return c.addrs[0]
}

func (c *Client) learn(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prefer = addr
	for _, a := range c.addrs {
		if a == addr {
			return
		}
	}
	c.addrs = append(c.addrs, addr)
}

// Leader returns the address the client currently sends requests to.
func (c *Client) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prefer
}

// retryable says whether a failed call may be sent again and where.
func retryable(err error, tr metadata.MD) (retry bool, leader string) {
	if status.Code(err) != codes.Unavailable {
		return false, ""
	}
	if len(tr.Get(TrailerOutcome)) > 0 {
		return false, ""
	}
	if v := tr.Get(TrailerLeader); len(v) > 0 {
		return true, v[0]
	}
	return true, "" // transport failure: the request did not reach a server
}

type callFunc func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) error

// read runs an idempotent call: a node that does not answer within the
// per-attempt timeout is skipped and the call is sent to the next one.
func (c *Client) read(ctx context.Context, call callFunc) error { return c.do(ctx, true, call) }

// write runs a call that must not be applied twice: it is retried only when
// it certainly was not applied (a redirect, a refused connection).
func (c *Client) write(ctx context.Context, call callFunc) error { return c.do(ctx, false, call) }

// do runs call against the preferred address, following redirects.
func (c *Client) do(ctx context.Context, idempotent bool, call callFunc) error {
	target := c.Leader()
	if target == "" {
		return status.Error(codes.InvalidArgument, "no coordinator address given")
	}
	backoff := 25 * time.Millisecond
	for {
		cc, err := c.conn(target)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		var tr metadata.MD
		attempt := 2 * time.Second
		if !idempotent {
			attempt = 10 * time.Second // a slow commit is not a reason to send it again
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		err = call(actx, pb.NewCoordinatorClient(cc), &tr)
		cancel()
		if err == nil {
			c.learn(target)
			return nil
		}
		retry, leader := retryable(err, tr)
		if !retry && idempotent && status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil {
			retry = true // the per-attempt timeout: the node is stuck, try another
		}
		if !retry {
			return err
		}
		if leader != "" && leader != target {
			target = leader
			continue
		}
		target = c.next(target)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return status.Errorf(codes.Unavailable, "%v (gave up: %v)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// SubmitJob submits a YAML or JSON job spec.
func (c *Client) SubmitJob(ctx context.Context, spec []byte) (*pb.Job, error) {
	return c.Submit(ctx, &pb.SubmitJobRequest{Spec: spec})
}

// Submit sends a whole submit request (with --from's source checkpoint).
func (c *Client) Submit(ctx context.Context, req *pb.SubmitJobRequest) (*pb.Job, error) {
	var out *pb.SubmitJobResponse
	err := c.write(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.SubmitJob(ctx, req, grpc.Trailer(tr))
		return err
	})
	return out.GetJob(), err
}

// GetJob returns a job with its generation and committed checkpoints.
func (c *Client) GetJob(ctx context.Context, id string) (*pb.GetJobResponse, error) {
	var out *pb.GetJobResponse
	err := c.read(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.GetJob(ctx, &pb.GetJobRequest{JobId: id}, grpc.Trailer(tr))
		return err
	})
	return out, err
}

// ListJobs lists jobs in submission order.
func (c *Client) ListJobs(ctx context.Context) ([]*pb.Job, error) {
	var out *pb.ListJobsResponse
	err := c.read(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.ListJobs(ctx, &pb.ListJobsRequest{}, grpc.Trailer(tr))
		return err
	})
	return out.GetJobs(), err
}

// CancelJob cancels a job.
func (c *Client) CancelJob(ctx context.Context, id, reason string) (*pb.Job, error) {
	var out *pb.CancelJobResponse
	err := c.write(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.CancelJob(ctx, &pb.CancelJobRequest{JobId: id, Reason: reason}, grpc.Trailer(tr))
		return err
	})
	return out.GetJob(), err
}

// ListWorkers lists workers by id.
func (c *Client) ListWorkers(ctx context.Context) ([]*pb.Worker, error) {
	var out *pb.ListWorkersResponse
	err := c.read(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.ListWorkers(ctx, &pb.ListWorkersRequest{}, grpc.Trailer(tr))
		return err
	})
	return out.GetWorkers(), err
}

// RegisterWorker registers (or re-registers) a worker.
func (c *Client) RegisterWorker(ctx context.Context, req *pb.RegisterWorkerRequest) (*pb.Worker, error) {
	var out *pb.RegisterWorkerResponse
	err := c.write(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.RegisterWorker(ctx, req, grpc.Trailer(tr))
		return err
	})
	return out.GetWorker(), err
}

// ReportCheckpoint reports a durable checkpoint shard.
func (c *Client) ReportCheckpoint(ctx context.Context, req *pb.ReportCheckpointRequest) (bool, error) {
	var out *pb.ReportCheckpointResponse
	err := c.read(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.ReportCheckpoint(ctx, req, grpc.Trailer(tr))
		return err
	})
	return out.GetCommitted(), err
}

// Status asks whichever node answers first.
func (c *Client) Status(ctx context.Context) (*pb.StatusResponse, error) {
	var out *pb.StatusResponse
	err := c.read(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.Status(ctx, &pb.StatusRequest{}, grpc.Trailer(tr))
		return err
	})
	return out, err
}

// StatusAt asks one node, without retries or redirects.
func (c *Client) StatusAt(ctx context.Context, addr string) (*pb.StatusResponse, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	return pb.NewCoordinatorClient(cc).Status(ctx, &pb.StatusRequest{})
}

// Join asks the group to add a coordinator; see JoinCoordinatorRequest.
func (c *Client) Join(ctx context.Context, req *pb.JoinCoordinatorRequest) (uint64, error) {
	var out *pb.JoinCoordinatorResponse
	err := c.read(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) (err error) {
		out, err = cl.JoinCoordinator(ctx, req, grpc.Trailer(tr))
		return err
	})
	return out.GetLeaderLastIndex(), err
}

// RemoveCoordinator removes a (dead) coordinator from the group.
func (c *Client) RemoveCoordinator(ctx context.Context, id string) error {
	return c.write(ctx, func(ctx context.Context, cl pb.CoordinatorClient, tr *metadata.MD) error {
		_, err := cl.RemoveCoordinator(ctx, &pb.RemoveCoordinatorRequest{Id: id}, grpc.Trailer(tr))
		return err
	})
}

// Session is an open worker session on the leader.
type Session struct {
	stream pb.Coordinator_WorkerSessionClient
	cancel context.CancelFunc
	// First is the assignment the leader sent on opening.
	First *pb.Assignment
}

// Send sends a heartbeat.
func (s *Session) Send(m *pb.WorkerMessage) error { return s.stream.Send(m) }

// Recv waits for the next assignment update.
func (s *Session) Recv() (*pb.Assignment, error) { return s.stream.Recv() }

// Close ends the session.
func (s *Session) Close() {
	_ = s.stream.CloseSend()
	s.cancel()
}

// OpenSession opens a worker session on the leader, following redirects,
// and waits for the first assignment. The session lives until Close or ctx ends.
func (c *Client) OpenSession(ctx context.Context, hello *pb.WorkerMessage) (*Session, error) {
	var out *Session
	err := c.read(ctx, func(_ context.Context, cl pb.CoordinatorClient, tr *metadata.MD) error {
		sctx, cancel := context.WithCancel(ctx)
		st, err := cl.WorkerSession(sctx)
		if err != nil {
			cancel()
			return err
		}
		if err := st.Send(hello); err != nil {
			_, err = st.Recv() // the real status
			*tr = st.Trailer()
			cancel()
			return err
		}
		a, err := st.Recv()
		if err != nil {
			*tr = st.Trailer()
			cancel()
			return err
		}
		out = &Session{stream: st, cancel: cancel, First: a}
		return nil
	})
	return out, err
}
