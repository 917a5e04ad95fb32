package coordinator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/internal/sysmem"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/dashboard"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

// Config is one coordinator process (cmd/coordinator is its flags).
type Config struct {
	ID       string
	RaftAddr string // raft listen and advertise address
	GRPCAddr string // gRPC API listen and advertise address
	HTTPAddr string // dashboard, /api/v1/, /metrics, /healthz, /readyz ("": off)
	DataDir  string // raft log, stable store, snapshots
	// Exactly one of Peers (bootstrap a new group) or Join (a member's gRPC
	// address) on first start; neither on a restart.
	Peers         []coord.Peer
	Join          string
	WorkerTimeout time.Duration   // a worker is lost after this long without heartbeats
	RaftTimeout   time.Duration   // raft heartbeat and election timeout
	TLS           *tlsauth.Source // nil: plaintext (the binary's --insecure)
	AuthToken     []byte          // bearer token accepted in place of the operator role (nil: none)
	OpenReads     bool            // with TLS: read-only calls without a certificate
	Logger        *slog.Logger
}

// Run runs the coordinator node until ctx ends: raft, the replicated
// cluster state, the scheduler and failure detector (on the leader), the
// gRPC API and, with HTTPAddr, the dashboard and health endpoints.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), metrics.NewPeakRSS(sysmem.PeakRSS))
	tlsSrc := cfg.TLS
	// With TLS: mutual TLS and the role policy on the API, mutual TLS
	// between coordinators (raft and catch-up calls).
	var serverOpts []grpc.ServerOption
	var dialOpts []grpc.DialOption
	var raftTLS *tls.Config
	var credVersion func() uint64
	if tlsSrc != nil {
		if tlsSrc.Identity().Role != tlsauth.RoleCoordinator {
			return fmt.Errorf("--tls-dir: certificate names %s, a coordinator needs role coordinator", tlsSrc.Identity())
		}
		rej := tlsauth.NewRejections(reg, log)
		a := &tlsauth.Authorizer{Source: tlsSrc, Policy: coord.Policy(), Component: "coordinator", OpenReads: cfg.OpenReads, Rejections: rej, Token: cfg.AuthToken}
		serverOpts = a.ServerOptions()
		coordOnly := tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}
		dialOpts = []grpc.DialOption{tlsSrc.DialOption(coordOnly)}
		credVersion = tlsSrc.Version
		raftTLS = tlsSrc.MutualConfig(coordOnly, func(remote string, err error) {
			rej.Record("raft", remote, tlsauth.Identity{}, "raft handshake", err)
		})
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	node, err := coord.Open(ctx, coord.Config{
		ID: cfg.ID, RaftAddr: cfg.RaftAddr, GRPCAddr: cfg.GRPCAddr, DataDir: cfg.DataDir, Peers: cfg.Peers, Join: cfg.Join,
		WorkerTimeout: cfg.WorkerTimeout, HeartbeatTimeout: cfg.RaftTimeout, ElectionTimeout: cfg.RaftTimeout,
		Logger: log, Metrics: coord.NewMetrics(reg), RaftTLS: raftTLS, DialOptions: dialOpts, CredentialsVersion: credVersion,
	})
	if err != nil {
		_ = lis.Close()
		return err
	}
	defer node.Close()
	reg.MustRegister(metrics.NewControlPlane(node.MetricsSnapshot))

	gs := grpc.NewServer(serverOpts...)
	coord.NewService(node).Register(gs)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(lis); err != nil {
			return fmt.Errorf("grpc serve: %w", err)
		}
		return nil
	})
	var hs *http.Server
	if cfg.HTTPAddr != "" {
		rec := dashboard.NewRecorder(dashboard.Config{Node: node, DialOptions: dialOpts, Logger: log})
		g.Go(func() error { rec.Run(ctx); return nil })
		mux := http.NewServeMux()
		mux.Handle("/", dashboard.Handler(rec))
		metrics.Endpoints(mux, reg, func() error {
			if lid, _ := node.Leader(); lid == "" {
				return errors.New("no leader known")
			}
			return nil
		})
		hs = &http.Server{Addr: cfg.HTTPAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error { return metrics.ListenAndServe(hs) })
	}
	g.Go(func() error {
		<-ctx.Done()
		log.Info("shutting down")
		node.QuietRaft()
		stopped := make(chan struct{})
		go func() { // owned here: GracefulStop returns once streams end or Stop cuts them
			gs.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second): // worker sessions are long-lived streams
			gs.Stop()
			<-stopped
		}
		if hs != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}
		return nil
	})
	log.Info("coordinator serving", "id", cfg.ID, "grpc", cfg.GRPCAddr, "raft", cfg.RaftAddr, "http", cfg.HTTPAddr)
	return g.Wait()
}
