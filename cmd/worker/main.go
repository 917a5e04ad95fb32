// Command worker is a ringmaster training process: it serves the peer
// collective service, registers with the coordinator group and trains the
// shard of whatever job generation it is assigned.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ringmaster-ml/ringmaster/internal/flagenv"
	"github.com/ringmaster-ml/ringmaster/internal/tlsflags"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	id := fs.String("id", "", "worker id, unique in the cluster (default: hostname-pid)")
	coords := fs.String("coordinators", "127.0.0.1:7100", "comma-separated coordinator gRPC addresses (any member; the leader is found)")
	listen := fs.String("listen", "127.0.0.1:7200", "peer collective gRPC listen address (port 0: any free port)")
	advertise := fs.String("advertise", "", "address peers dial (default: the listen address)")
	bulk := fs.String("bulk-addr", "", "raw TCP bulk listener for collectives with peers on other hosts (default: the listen host, any free port; \"off\" disables)")
	localBulk := fs.Bool("local-bulk", true, "also accept bulk streams on a Unix socket, which peers on the same host and network namespace use instead of TCP")
	outDir := fs.String("out-dir", "ringmaster-data/models", "where finished jobs' models are saved")
	dataDir := fs.String("data-dir", "", "where this worker keeps its checkpoints (default ringmaster-data/worker-<id>)")
	httpAddr := fs.String("http-addr", "", "HTTP address for /metrics, /healthz, /readyz (empty: off)")
	peakGFLOPS := fs.Float64("peak-gflops", 0, "this worker's peak GFLOP/s, the MFU denominator (0: measure the fp32 FMA peak for 200 ms at start; < 0: do not export MFU)")
	cores := fs.Int("cores", runtime.NumCPU(), "cores advertised to the scheduler (default: --threads when set, else all)")
	threads := fs.Int("threads", 0, "cores for matrix products (0: all)")
	peerTimeout := fs.Duration("peer-timeout", 10*time.Second, "fail a collective when a peer makes no progress for this long")
	memoryMiB := fs.Int64("memory-mib", 0, "MiB a job may use on this worker; a generation that would not fit fails its job before allocating (0: what the machine or cgroup has free)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	tlsFlags := tlsflags.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	coresSet := false
	fs.Visit(func(f *flag.Flag) { coresSet = coresSet || f.Name == "cores" })
	if !coresSet && *threads > 0 {
		*cores = *threads // what `ringctl workers` shows is what this worker trains on
	}
	if err := flagenv.Apply(fs); err != nil {
		return err
	}
	if *memoryMiB < 0 {
		return fmt.Errorf("--memory-mib %d: want ≥ 0 (0: what the machine has free)", *memoryMiB)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// With TLS the worker is who its certificate names (--tls-name, or
	// --id, defaults to the other).
	certName := *tlsFlags.Name
	if certName == "" {
		certName = *id
	}
	tlsSrc, err := tlsFlags.Load(ctx, certName, log)
	if err != nil {
		return err
	}
	if tlsSrc != nil && *id == "" {
		*id = tlsSrc.Identity().Name
	}
	if *id == "" {
		host, _ := os.Hostname()
		*id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if *dataDir == "" {
		*dataDir = filepath.Join("ringmaster-data", "worker-"+*id)
	}
	path, err := kernels.ParsePath(os.Getenv("RINGMASTER_GEMM"))
	if err != nil {
		return fmt.Errorf("RINGMASTER_GEMM: %w", err)
	}
	peakFLOPS := *peakGFLOPS * 1e9
	return train.RunProcess(ctx, train.ProcessConfig{
		ID: *id, Coordinators: strings.Split(*coords, ","),
		Listen: *listen, Advertise: *advertise, BulkAddr: *bulk, NoLocalBulk: !*localBulk,
		OutDir: *outDir, DataDir: *dataDir, HTTPAddr: *httpAddr,
		PeakFLOPS: peakFLOPS, Cores: *cores, Threads: *threads, GEMM: path,
		PeerTimeout: *peerTimeout, Memory: *memoryMiB << 20, TLS: tlsSrc, Logger: log,
	})
}
