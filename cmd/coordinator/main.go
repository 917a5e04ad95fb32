// Command coordinator runs one node of the coordinator group: raft, the
// replicated cluster state, the scheduler and failure detector (on the
// leader), the gRPC API and an HTTP endpoint with /metrics, /healthz and
// /readyz. Flags can also be given as RINGMASTER_<FLAG> environment
// variables (RINGMASTER_RAFT_ADDR for --raft-addr).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/flagenv"
	"github.com/ringmaster-ml/ringmaster/internal/tlsflags"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/coordinator"
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

	tlsSrc, err := tlsFlags.Load(ctx, *id, log)
	if err != nil {
		return err
	}
	var token []byte // checked only with TLS: without it nothing is authorized
	if tlsSrc != nil && *tokenFile != "" {
		if token, err = tlsauth.ReadTokenFile(*tokenFile); err != nil {
			return err
		}
	}
	return coordinator.Run(ctx, coordinator.Config{
		ID: *id, RaftAddr: *raftAddr, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, DataDir: *dataDir,
		Peers: ps, Join: *join, WorkerTimeout: *workerTimeout, RaftTimeout: *raftTimeout,
		TLS: tlsSrc, AuthToken: token, OpenReads: *openReads, Logger: log,
	})
}
