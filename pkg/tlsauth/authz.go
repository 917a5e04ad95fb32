package tlsauth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Rule is what a gRPC method needs of its caller.
type Rule struct {
	// Roles the caller's certificate may carry (any of them).
	Roles []Role
	// Token: a valid bearer token is accepted in place of Roles.
	Token bool
	// Read: a read-only method, open to callers without a certificate when
	// the Authorizer's OpenReads is set.
	Read bool
	// Self: every request message that names a worker (GetWorkerId) must
	// name the caller's own certificate name.
	Self bool
	// Open: no check at all (health probes).
	Open bool
}

// Policy maps full gRPC method names (/pkg.Service/Method) to rules.
// A method missing from it is refused.
type Policy map[string]Rule

// Rejections counts and logs refused peers: one log line per refusal, with
// the peer's identity and address.
type Rejections struct {
	log   *slog.Logger
	count *prometheus.CounterVec
}

// RejectionsMetric is the counter's name.
const RejectionsMetric = "ringmaster_auth_rejections_total"

// NewRejections registers the rejection counter on reg (nil: not
// registered) and logs on log. component labels the counter
// ("coordinator", "raft", "peer", "bulk").
func NewRejections(reg prometheus.Registerer, log *slog.Logger) *Rejections {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Rejections{log: log, count: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: RejectionsMetric,
		Help: "Connections and calls refused by authentication or authorization, by where and why.",
	}, []string{"component", "reason"})}
	if reg != nil {
		reg.MustRegister(r.count)
	}
	return r
}

// Record counts and logs one refusal.
func (r *Rejections) Record(component, remote string, id Identity, what string, err error) {
	if r == nil {
		return
	}
	reason := ReasonOf(err)
	r.count.WithLabelValues(component, reason).Inc()
	r.log.Warn("refused", "component", component, "peer", id.String(), "remote", remote, "call", what, "reason", reason, "err", err)
}

// Count is the number of refusals recorded with these labels (for tests).
func (r *Rejections) Count(component, reason string) float64 {
	m := &dtoMetric{}
	if err := r.count.WithLabelValues(component, reason).Write(&m.Metric); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// Authorizer checks every call of a gRPC server against a Policy, with the
// caller's identity taken from its verified TLS certificate.
type Authorizer struct {
	Source    *Source
	Policy    Policy
	Component string // label of the rejection counter ("coordinator", "peer")
	// OpenReads lets callers without a certificate make Read calls.
	OpenReads bool
	// Token, when non-empty, is the bearer token accepted for Token rules
	// (metadata "authorization: Bearer <token>").
	Token      []byte
	Rejections *Rejections
}

// ReadTokenFile reads a bearer token (surrounding whitespace trimmed).
func ReadTokenFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if len(t) < 16 {
		return nil, fmt.Errorf("auth token file %s: token has %d characters, want at least 16", path, len(t))
	}
	return []byte(t), nil
}

type ctxKey struct{}

// Caller is the verified identity of the caller of the current call (the
// zero Identity for an anonymous reader or a token holder).
func Caller(ctx context.Context) Identity {
	id, _ := ctx.Value(ctxKey{}).(Identity)
	return id
}

// authorize decides a call; on refusal it returns the gRPC status.
func (a *Authorizer) authorize(ctx context.Context, method string) (Identity, Rule, error) {
	rule, ok := a.Policy[method]
	if !ok {
		return a.refuse(ctx, Identity{}, method, status.Errorf(codes.PermissionDenied, "%s is not allowed on this server", method), reject("unknown_method", "method %s has no rule", method))
	}
	if rule.Open {
		return Identity{}, rule, nil
	}
	cs, _ := tlsState(ctx)
	id, verr := a.Source.VerifyState(cs)
	if verr == nil {
		if err := (Expect{Roles: rule.Roles}).Check(id); err == nil {
			return id, rule, nil
		} else if !rule.Token && !rule.Read {
			return a.refuse(ctx, id, method, status.Errorf(codes.PermissionDenied, "%s: %v", method, err), err)
		} else if rule.Read {
			return id, rule, nil // any verified member may read
		} else {
			verr = err
		}
	}
	if rule.Token && len(a.Token) > 0 {
		switch tok, given := bearer(ctx); {
		case given && subtle.ConstantTimeCompare(tok, a.Token) == 1:
			return id, rule, nil
		case given:
			err := reject("bad_token", "wrong bearer token")
			return a.refuse(ctx, id, method, status.Errorf(codes.Unauthenticated, "%s: wrong bearer token (needs role %s or the cluster's auth token)", method, rolesText(rule.Roles)), err)
		}
	}
	if rule.Read && a.OpenReads && ReasonOf(verr) == "no_certificate" {
		return Identity{}, rule, nil
	}
	code := codes.Unauthenticated
	if ReasonOf(verr) == "wrong_role" {
		code = codes.PermissionDenied
	}
	need := "role " + rolesText(rule.Roles)
	if rule.Token && len(a.Token) > 0 {
		need += " or the cluster's auth token"
	}
	if rule.Read {
		need = "a certificate from the cluster CA"
	}
	return a.refuse(ctx, id, method, status.Errorf(code, "%s needs %s: %v", method, need, verr), verr)
}

func (a *Authorizer) refuse(ctx context.Context, id Identity, method string, st, cause error) (Identity, Rule, error) {
	a.Rejections.Record(a.Component, PeerAddr(ctx), id, method, cause)
	return Identity{}, Rule{}, st
}

func bearer(ctx context.Context) ([]byte, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return []byte(t), true
		}
	}
	return nil, false
}

type workerNamed interface{ GetWorkerId() string }

// checkSelf refuses a message that names a worker other than the caller.
func (a *Authorizer) checkSelf(ctx context.Context, id Identity, rule Rule, method string, msg any) error {
	if !rule.Self {
		return nil
	}
	m, ok := msg.(workerNamed)
	if !ok || m.GetWorkerId() == "" || m.GetWorkerId() == id.Name {
		return nil
	}
	err := reject("wrong_identity", "%s may act only as worker %q, not %q", id, id.Name, m.GetWorkerId())
	a.Rejections.Record(a.Component, PeerAddr(ctx), id, method, err)
	return status.Errorf(codes.PermissionDenied, "%s: %v", method, err)
}

// Unary is the unary server interceptor.
func (a *Authorizer) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	id, rule, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := a.checkSelf(ctx, id, rule, info.FullMethod, req); err != nil {
		return nil, err
	}
	return h(context.WithValue(ctx, ctxKey{}, id), req)
}

// Stream is the stream server interceptor; with Rule.Self it checks every
// received message.
func (a *Authorizer) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx := ss.Context()
	id, rule, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &checkedStream{ServerStream: ss, a: a, id: id, rule: rule, method: info.FullMethod, ctx: context.WithValue(ctx, ctxKey{}, id)})
}

// ServerOptions are the options a gRPC server needs to serve with TLS
// and this Authorizer.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentialsTLS(a.Source.ServerConfig())),
		grpc.ChainUnaryInterceptor(a.Unary),
		grpc.ChainStreamInterceptor(a.Stream),
	}
}

type checkedStream struct {
	grpc.ServerStream
	a      *Authorizer
	id     Identity
	rule   Rule
	method string
	ctx    context.Context
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.a.checkSelf(s.ctx, s.id, s.rule, s.method, m)
}
