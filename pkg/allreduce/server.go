package allreduce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// ServerOptions configure a worker's peer server.
type ServerOptions struct {
	// BulkAddr is the listen address of the raw TCP bulk listener, e.g.
	// "127.0.0.1:0" or ":7071". Empty disables bulk streams (frames then
	// travel on gRPC streams).
	BulkAddr string
	// BulkAdvertise is the host:port peers dial for bulk streams; empty
	// advertises the listener's address (an unspecified host is replaced by
	// the host the peer used for gRPC).
	BulkAdvertise string
	// NoLocalBulk disables the Unix-socket bulk listener that peers on the
	// same host and network namespace use instead of TCP (the same frames,
	// about 1.7× the bandwidth of loopback TCP). It is on whenever bulk
	// streams are, on Linux.
	NoLocalBulk bool
	Logger      *slog.Logger
}

// Server is a worker process's peer service: one per process, serving every
// group (job, generation) the worker belongs to. It implements the gRPC
// PeerCollective service (register it with Register) and owns the raw TCP
// bulk listener. Frames are routed to the group named by (job, generation);
// unknown groups and stale generations are rejected.
type Server struct {
	pb.UnimplementedPeerCollectiveServer
	log       *slog.Logger
	ln        net.Listener // nil without bulk streams
	advertise string
	local     net.Listener // Unix-socket bulk listener for same-host peers; nil without
	localAddr string
	hostID    string // this process's kernel and network namespace (see hostID)

	mu      sync.Mutex
	groups  map[GroupID]*endpoint
	latest  map[string]uint64 // newest generation joined, by job
	ended   map[GroupID]bool  // groups that were joined and have closed
	pending map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup // accept loop and bulk handshakes
}

// NewServer starts a peer server (and its bulk listener, if configured).
// Close stops it.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:     opts.Logger,
		groups:  make(map[GroupID]*endpoint),
		latest:  make(map[string]uint64),
		ended:   make(map[GroupID]bool),
		pending: make(map[net.Conn]struct{}),
		hostID:  hostID(),
	}
	if opts.BulkAddr != "" {
		ln, err := net.Listen("tcp", opts.BulkAddr)
		if err != nil {
			return nil, fmt.Errorf("allreduce: bulk listener: %w", err)
		}
		s.ln = ln
		s.advertise = opts.BulkAdvertise
		if s.advertise == "" {
			s.advertise = ln.Addr().String()
		}
		s.wg.Add(1)
		go s.acceptLoop(ln)
		if !opts.NoLocalBulk && s.hostID != "" {
			// Best effort: without it, same-host peers use TCP.
			if l, err := net.Listen("unix", localBulkName()); err != nil {
				s.log.Warn("no local bulk listener; same-host peers use TCP", "err", err)
			} else {
				s.local, s.localAddr = l, l.Addr().String()
				s.wg.Add(1)
				go s.acceptLoop(l)
			}
		}
	}
	return s, nil
}

// Register registers the PeerCollective service on gs.
func (s *Server) Register(gs grpc.ServiceRegistrar) { pb.RegisterPeerCollectiveServer(gs, s) }

// BulkAddr is the bulk listener's advertised address ("" without one).
func (s *Server) BulkAddr() string { return s.advertise }

// Close stops the bulk listener and closes every group's transport.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	eps := make([]*endpoint, 0, len(s.groups))
	for _, ep := range s.groups {
		eps = append(eps, ep)
	}
	for c := range s.pending {
		c.Close()
	}
	s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	if s.local != nil {
		s.local.Close()
	}
	for _, ep := range eps {
		ep.Close()
	}
	s.wg.Wait()
	return err
}

// Mode selects how a group's frames travel.
type Mode int

const (
	// ModeBulk sends frames on raw bulk streams negotiated over gRPC: a Unix
	// socket to a peer on the same host and network namespace, TCP to any
	// other (falling back to gRPC streams when the peer has no bulk listener).
	ModeBulk Mode = iota
	// ModeGRPC sends frames on gRPC client streams.
	ModeGRPC
	// ModeTCP is ModeBulk without the Unix-socket path: TCP even to a peer
	// on the same host (for measurements and for hosts where it misbehaves).
	ModeTCP
)

// GroupConfig describes this process's membership in one group.
type GroupConfig struct {
	Job        string
	Generation uint64
	Rank       int
	// Peers are the gRPC addresses of the group's peer servers, by rank
	// (Peers[Rank] is this process's own and is not dialed).
	Peers []string
	// PeerTimeout bounds every wait on a peer (default 10s).
	PeerTimeout time.Duration
	Mode        Mode
	// DialOptions are added to the peer connections' options (transport
	// credentials default to insecure).
	DialOptions []grpc.DialOption
}

// Join registers a group on this server and returns its transport, ready for
// New. Peers are dialed lazily, retrying while their group is not yet
// registered. Joining a generation older than one already joined for the same
// job fails with ErrStaleGeneration.
func (s *Server) Join(cfg GroupConfig) (Transport, error) {
	n := len(cfg.Peers)
	if cfg.Rank < 0 || cfg.Rank >= n {
		return nil, fmt.Errorf("allreduce: rank %d outside group of %d peers", cfg.Rank, n)
	}
	if cfg.PeerTimeout <= 0 {
		cfg.PeerTimeout = 10 * time.Second
	}
	id := GroupID{Job: cfg.Job, Generation: cfg.Generation}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, fmt.Errorf("allreduce: join %s/%d: %w", cfg.Job, cfg.Generation, ErrClosed)
	case s.groups[id] != nil || s.ended[id]:
		return nil, fmt.Errorf("allreduce: join %s/%d: group already joined", cfg.Job, cfg.Generation)
	}
	if latest, ok := s.latest[cfg.Job]; ok && cfg.Generation < latest {
		return nil, fmt.Errorf("allreduce: join %s/%d, generation %d already joined: %w", cfg.Job, cfg.Generation, latest, ErrStaleGeneration)
	}
	ep := newEndpoint(s, id, cfg)
	s.groups[id] = ep
	s.latest[cfg.Job] = cfg.Generation
	return ep, nil
}

func (s *Server) leave(ep *endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[ep.id] == ep {
		delete(s.groups, ep.id)
		s.ended[ep.id] = true
	}
}

// route finds the group a link described by h belongs to.
func (s *Server) route(h *pb.PeerHello) (*endpoint, error) {
	id := GroupID{Job: h.GetJob(), Generation: h.GetGeneration()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ep := s.groups[id]; ep != nil {
		if int(h.GetTo()) != ep.rank || int(h.GetFrom()) >= ep.size || int(h.GetWorldSize()) != ep.size || int(h.GetFrom()) == ep.rank {
			return nil, fmt.Errorf("link %d→%d of %d ranks, group %s/%d has rank %d of %d: %w",
				h.GetFrom(), h.GetTo(), h.GetWorldSize(), id.Job, id.Generation, ep.rank, ep.size, ErrMismatch)
		}
		return ep, nil
	}
	if latest, ok := s.latest[id.Job]; ok && id.Generation < latest {
		return nil, fmt.Errorf("group %s/%d, this worker is at generation %d: %w", id.Job, id.Generation, latest, ErrStaleGeneration)
	}
	if s.ended[id] {
		return nil, fmt.Errorf("group %s/%d closed: %w", id.Job, id.Generation, ErrPeerClosed)
	}
	return nil, fmt.Errorf("group %s/%d: %w", id.Job, id.Generation, ErrUnknownGroup)
}

// OpenBulk implements the gRPC service: it checks that the group exists and
// returns the bulk listener's address ("" when frames must use gRPC).
func (s *Server) OpenBulk(ctx context.Context, h *pb.PeerHello) (*pb.PeerBulkEndpoint, error) {
	if _, err := s.route(h); err != nil {
		return nil, toStatus(err)
	}
	return &pb.PeerBulkEndpoint{Address: s.advertise, LocalAddress: s.localAddr, HostId: s.hostID}, nil
}

// Frames implements the gRPC service: the stream's frames are handed to the
// group's receiver for the sending rank until the stream or the group ends.
func (s *Server) Frames(stream pb.PeerCollective_FramesServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	ep, err := s.route(first.GetHello())
	if err != nil {
		return toStatus(err)
	}
	from := int(first.GetHello().GetFrom())
	r := &grpcReader{frames: make(chan *pb.PeerFrame, 16), dead: make(chan struct{})}
	if err := ep.attach(from, r); err != nil {
		return toStatus(err)
	}
	msg := first
	for {
		if msg.GetHeader() != nil {
			select {
			case r.frames <- msg:
			case <-ep.done:
				return status.Error(codes.Aborted, "group closed")
			}
		}
		msg, err = stream.Recv()
		if err != nil {
			r.fail(err)
			return nil
		}
	}
}

// toStatus maps routing errors to gRPC status codes.
func toStatus(err error) error {
	c := codes.Internal
	switch {
	case errors.Is(err, ErrUnknownGroup):
		c = codes.NotFound
	case errors.Is(err, ErrStaleGeneration):
		c = codes.FailedPrecondition
	case errors.Is(err, ErrPeerClosed), errors.Is(err, ErrClosed):
		c = codes.Aborted
	case errors.Is(err, ErrMismatch):
		c = codes.InvalidArgument
	}
	return status.Error(c, err.Error())
}

// fromStatus maps a gRPC status back to the sentinel errors.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("%s: %w", st.Message(), ErrUnknownGroup)
	case codes.FailedPrecondition:
		return fmt.Errorf("%s: %w", st.Message(), ErrStaleGeneration)
	case codes.Aborted:
		return fmt.Errorf("%s: %w", st.Message(), ErrPeerClosed)
	case codes.InvalidArgument:
		return fmt.Errorf("%s: %w", st.Message(), ErrMismatch)
	case codes.Unavailable:
		return fmt.Errorf("%s: %w", st.Message(), ErrPeerClosed)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", st.Message(), ErrPeerTimeout)
	}
	return err
}
