// Command coordinator runs one node of the coordinator group: raft, the
// replicated cluster state, the scheduler and failure detector (on the
// leader), the gRPC API and an HTTP endpoint with /metrics, /healthz and
// /readyz. Flags can also be given as RINGMASTER_<FLAG> environment
// variables (RINGMASTER_RAFT_ADDR for --raft-addr).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/internal/flagenv"
	"github.com/ringmaster-ml/ringmaster/internal/tlsflags"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/dashboard"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	id := fs.String("id", "", "node id (unique in the group)")
	raftAddr := fs.String("raft-addr", "127.0.0.1:7000", "raft listen/advertise address")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:7100", "gRPC API listen/advertise address")
	httpAddr := fs.String("http-addr", "", "HTTP address for the dashboard (/), its JSON API (/api/v1/), /metrics, /healthz, /readyz (empty: off)")
	dataDir := fs.String("data-dir", "", "directory for the raft log, stable store and snapshots")
	peers := fs.String("peers", "", "bootstrap a new group: id=raftaddr=grpcaddr,... (must include this node)")
	join := fs.String("join", "", "join an existing group through this coordinator gRPC address")
	workerTimeout := fs.Duration("worker-timeout", 3*time.Second, "declare a worker lost after this long without heartbeats")
	raftTimeout := fs.Duration("raft-timeout", time.Second, "raft heartbeat and election timeout")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	tlsFlags := tlsflags.Register(fs)
	tokenFile := fs.String("auth-token-file", "", "file holding a bearer token that is accepted in place of the operator role (submit, cancel, remove member)")
	openReads := fs.Bool("open-reads", false, "with TLS: let callers without a certificate make read-only calls (jobs, workers, status)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := flagenv.Apply(fs); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if *id == "" || *dataDir == "" {
		return errors.New("--id and --data-dir are required")
	}
	if (*peers == "") == (*join == "") {
		// Both empty is fine on a restart; insist only when there is no state.
		if _, err := os.Stat(*dataDir + "/raft.db"); err != nil {
			return errors.New("give exactly one of --peers or --join on first start")
		}
	}
	ps, err := coord.ParsePeers(*peers)
	if err != nil {
		return fmt.Errorf("--peers: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tlsSrc, err := tlsFlags.Load(ctx, *id, log)
	if err != nil {
		return err
	}
	var serverOpts []grpc.ServerOption
	var dialOpts []grpc.DialOption
	var raftTLS *tls.Config
	var credVersion func() uint64
	if tlsSrc != nil {
		if tlsSrc.Identity().Role != tlsauth.RoleCoordinator {
			return fmt.Errorf("--tls-dir: certificate names %s, a coordinator needs role coordinator", tlsSrc.Identity())
		}
		rej := tlsauth.NewRejections(reg, log)
		a := &tlsauth.Authorizer{Source: tlsSrc, Policy: coord.Policy(), Component: "coordinator", OpenReads: *openReads, Rejections: rej}
		if *tokenFile != "" {
			if a.Token, err = tlsauth.ReadTokenFile(*tokenFile); err != nil {
				return err
			}
		}
		serverOpts = a.ServerOptions()
		coordOnly := tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}}
		dialOpts = []grpc.DialOption{tlsSrc.DialOption(coordOnly)}
		credVersion = tlsSrc.Version
		raftTLS = tlsSrc.MutualConfig(coordOnly, func(remote string, err error) {
			rej.Record("raft", remote, tlsauth.Identity{}, "raft handshake", err)
		})
	}
	lis, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	node, err := coord.Open(ctx, coord.Config{
		ID: *id, RaftAddr: *raftAddr, GRPCAddr: *grpcAddr, DataDir: *dataDir, Peers: ps, Join: *join,
		WorkerTimeout: *workerTimeout, HeartbeatTimeout: *raftTimeout, ElectionTimeout: *raftTimeout,
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
	if *httpAddr != "" {
		rec := dashboard.NewRecorder(dashboard.Config{Node: node, DialOptions: dialOpts, Logger: log})
		g.Go(func() error { rec.Run(ctx); return nil })
		mux := http.NewServeMux()
		mux.Handle("/", dashboard.Handler(rec))
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if lid, _ := node.Leader(); lid == "" {
				http.Error(w, "no leader known", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ready")
		})
		hs = &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http serve: %w", err)
			}
			return nil
		})
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
	log.Info("coordinator serving", "id", *id, "grpc", *grpcAddr, "raft", *raftAddr, "http", *httpAddr)
	return g.Wait()
}
