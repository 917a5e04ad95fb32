package allreduce

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
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
	// TLS, when set, makes every peer link mutual TLS with the cluster's
	// certificates: the gRPC peer service (serve it with
	// GRPCServerOptions), the bulk TCP streams and the dials to peers. A
	// link is then accepted only from the worker that the group's PeerIDs
	// put at the sending rank, and a sender talks only to the worker it
	// expects at the receiving rank. Same-host Unix-socket links, which
	// carry no certificate, need a one-time token handed out over the
	// authenticated gRPC call and a connecting process of this process's
	// user (SO_PEERCRED).
	TLS *tlsauth.Source
	// Rejections counts and logs refused peers (component "peer" for gRPC
	// calls, "bulk" for bulk streams); nil: logged only.
	Rejections *tlsauth.Rejections
	Logger     *slog.Logger
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
	tls       *tlsauth.Source
	rej       *tlsauth.Rejections

	mu      sync.Mutex
	groups  map[GroupID]*endpoint
	latest  map[string]uint64 // newest generation joined, by job
	ended   map[GroupID]bool  // groups that were joined and have closed
	pending map[net.Conn]struct{}
	tokens  map[linkKey]localGrant // Unix-socket links OpenBulk admitted (TLS only)
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
		tokens:  make(map[linkKey]localGrant),
		hostID:  hostID(),
		tls:     opts.TLS,
		rej:     opts.Rejections,
	}
	if s.rej == nil {
		s.rej = tlsauth.NewRejections(nil, opts.Logger)
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
		go s.acceptLoop(ln, false)
		if !opts.NoLocalBulk && s.hostID != "" {
			// Best effort: without it, same-host peers use TCP.
			if l, err := net.Listen("unix", localBulkName()); err != nil {
				s.log.Warn("no local bulk listener; same-host peers use TCP", "err", err)
			} else {
				s.local, s.localAddr = l, l.Addr().String()
				s.wg.Add(1)
				go s.acceptLoop(l, true)
			}
		}
	}
	return s, nil
}

// Register registers the PeerCollective service on gs.
func (s *Server) Register(gs grpc.ServiceRegistrar) { pb.RegisterPeerCollectiveServer(gs, s) }

// GRPCServerOptions are the options of the gRPC server that serves this
// peer service: with TLS, the server's certificate and a check on every
// call that the caller holds a worker certificate from the cluster CA
// (Unauthenticated / PermissionDenied otherwise, counted as "peer"
// rejections); without, none. more adds the rules of other services the
// same server carries (the worker's PeerCheckpoints).
func (s *Server) GRPCServerOptions(more tlsauth.Policy) []grpc.ServerOption {
	if s.tls == nil {
		return nil
	}
	worker := tlsauth.Rule{Roles: []tlsauth.Role{tlsauth.RoleWorker}}
	policy := tlsauth.Policy{
		pb.PeerCollective_OpenBulk_FullMethodName: worker,
		pb.PeerCollective_Frames_FullMethodName:   worker,
	}
	maps.Copy(policy, more)
	a := &tlsauth.Authorizer{Source: s.tls, Component: "peer", Rejections: s.rej, Policy: policy}
	return a.ServerOptions()
}

// linkKey names one incoming link of one group.
type linkKey struct {
	group GroupID
	from  int
}

// localGrant is a Unix-socket link OpenBulk admitted: the token the sender
// must present and the worker it was given to.
type localGrant struct {
	token  []byte
	caller string
}

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
	// PeerIDs are the worker ids of the ranks (the generation's rank
	// table). With ServerOptions.TLS they are required: a link from rank r
	// is accepted only from a certificate naming PeerIDs[r], and a dial to
	// rank r only reaches a server whose certificate names PeerIDs[r].
	PeerIDs []string
	// DialOptions are added to the peer connections' options (transport
	// credentials: insecure, or the server's TLS).
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
	if s.tls != nil {
		if len(cfg.PeerIDs) != n {
			return nil, fmt.Errorf("allreduce: join %s/%d: mutual TLS needs the worker id of each of the %d ranks (GroupConfig.PeerIDs has %d)", cfg.Job, cfg.Generation, n, len(cfg.PeerIDs))
		}
		for r, id := range cfg.PeerIDs {
			if id == "" {
				return nil, fmt.Errorf("allreduce: join %s/%d: mutual TLS needs the worker id of rank %d (GroupConfig.PeerIDs[%d] is empty)", cfg.Job, cfg.Generation, r, r)
			}
		}
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
	for k := range s.tokens {
		if k.group == ep.id {
			delete(s.tokens, k)
		}
	}
}

// route finds the group a link described by h belongs to. With TLS, caller
// is the verified worker id of the link's sender, which must be the worker
// the group has at the sending rank.
func (s *Server) route(h *pb.PeerHello, caller string) (*endpoint, error) {
	id := GroupID{Job: h.GetJob(), Generation: h.GetGeneration()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ep := s.groups[id]; ep != nil {
		if int(h.GetTo()) != ep.rank || int(h.GetFrom()) >= ep.size || int(h.GetWorldSize()) != ep.size || int(h.GetFrom()) == ep.rank {
			return nil, fmt.Errorf("link %d→%d of %d ranks, group %s/%d has rank %d of %d: %w",
				h.GetFrom(), h.GetTo(), h.GetWorldSize(), id.Job, id.Generation, ep.rank, ep.size, ErrMismatch)
		}
		if s.tls != nil && caller != ep.peerIDs[h.GetFrom()] {
			return nil, &tlsauth.Rejection{Reason: "wrong_rank", Err: fmt.Errorf("link from rank %d of group %s/%d must come from worker %q, not %q: %w",
				h.GetFrom(), id.Job, id.Generation, ep.peerIDs[h.GetFrom()], caller, ErrUnauthorized)}
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
//
// With TLS it also hands the caller a one-time token for a Unix-socket link.
func (s *Server) OpenBulk(ctx context.Context, h *pb.PeerHello) (*pb.PeerBulkEndpoint, error) {
	caller := tlsauth.Caller(ctx).Name
	if _, err := s.route(h, caller); err != nil {
		s.refused("peer", tlsauth.PeerAddr(ctx), caller, err)
		return nil, toStatus(err)
	}
	out := &pb.PeerBulkEndpoint{Address: s.advertise, LocalAddress: s.localAddr, HostId: s.hostID}
	if s.tls != nil && s.local != nil {
		tok := make([]byte, 16)
		rand.Read(tok)
		key := linkKey{GroupID{Job: h.GetJob(), Generation: h.GetGeneration()}, int(h.GetFrom())}
		s.mu.Lock()
		if s.groups[key.group] != nil { // not after the group closed
			s.tokens[key] = localGrant{token: tok, caller: caller}
			out.LocalToken = tok
		}
		s.mu.Unlock()
	}
	return out, nil
}

// takeLocalGrant consumes the Unix-socket grant h presents and returns the
// worker it was given to.
func (s *Server) takeLocalGrant(h *pb.PeerHello) (string, error) {
	key := linkKey{GroupID{Job: h.GetJob(), Generation: h.GetGeneration()}, int(h.GetFrom())}
	s.mu.Lock()
	g, ok := s.tokens[key]
	if ok && subtle.ConstantTimeCompare(g.token, h.GetLocalToken()) == 1 {
		delete(s.tokens, key)
		s.mu.Unlock()
		return g.caller, nil
	}
	s.mu.Unlock()
	return "", &tlsauth.Rejection{Reason: "bad_token", Err: fmt.Errorf("unix-socket link from rank %d of group %s/%d without the token OpenBulk issued: %w",
		h.GetFrom(), h.GetJob(), h.GetGeneration(), ErrUnauthorized)}
}

// refused counts and logs a link refused for its identity (routing errors
// of other kinds are the ordinary life of generations and are not).
func (s *Server) refused(component, remote, caller string, err error) {
	if errors.Is(err, ErrUnauthorized) {
		s.rej.Record(component, remote, tlsauth.Identity{Role: tlsauth.RoleWorker, Name: caller}, "peer link", err)
	}
}

// Frames implements the gRPC service: the stream's frames are handed to the
// group's receiver for the sending rank until the stream or the group ends.
func (s *Server) Frames(stream pb.PeerCollective_FramesServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	caller := tlsauth.Caller(stream.Context()).Name
	ep, err := s.route(first.GetHello(), caller)
	if err != nil {
		s.refused("peer", tlsauth.PeerAddr(stream.Context()), caller, err)
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
	case errors.Is(err, ErrUnauthorized):
		c = codes.PermissionDenied
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
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%s: %w", st.Message(), ErrUnauthorized)
	case codes.Unavailable:
		return fmt.Errorf("%s: %w", st.Message(), ErrPeerClosed)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", st.Message(), ErrPeerTimeout)
	}
	return err
}
