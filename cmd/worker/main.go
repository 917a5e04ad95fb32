// Command worker is a ringmaster training process: it serves the peer
// collective service, registers with the coordinator group and trains the
// shard of whatever job generation it is assigned.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/internal/flagenv"
	"github.com/ringmaster-ml/ringmaster/internal/peak"
	"github.com/ringmaster-ml/ringmaster/internal/tlsflags"
	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
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
	var coordDial []grpc.DialOption
	if tlsSrc != nil {
		me := tlsSrc.Identity()
		switch {
		case me.Role != tlsauth.RoleWorker:
			return fmt.Errorf("--tls-dir: certificate names %s, a worker needs role worker", me)
		case *id == "":
			*id = me.Name
		case *id != me.Name:
			return fmt.Errorf("--id %q but the certificate names worker %q: a worker can act only as its certificate's id", *id, me.Name)
		}
		coordDial = []grpc.DialOption{tlsSrc.DialOption(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}})}
	}
	if *id == "" {
		host, _ := os.Hostname()
		*id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}

	path, err := kernels.ParsePath(os.Getenv("RINGMASTER_GEMM"))
	if err != nil {
		return err
	}
	gemm, err := kernels.New(kernels.Options{Threads: *threads, Path: path})
	if err != nil {
		return err
	}
	defer gemm.Close()

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("peer listen: %w", err)
	}
	peerAddr := *advertise
	if peerAddr == "" {
		peerAddr = lis.Addr().String()
	}
	bulkAddr := *bulk
	switch bulkAddr {
	case "off":
		bulkAddr = ""
	case "":
		host, _, _ := net.SplitHostPort(lis.Addr().String())
		bulkAddr = net.JoinHostPort(host, "0")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// With TLS every peer link is mutual TLS, accepted only from the worker
	// the generation puts at that rank (refusals counted on /metrics).
	peerOpts := allreduce.ServerOptions{BulkAddr: bulkAddr, NoLocalBulk: !*localBulk, Logger: log}
	if tlsSrc != nil {
		peerOpts.TLS, peerOpts.Rejections = tlsSrc, tlsauth.NewRejections(reg, log)
	}
	peer, err := allreduce.NewServer(peerOpts)
	if err != nil {
		_ = lis.Close()
		return err
	}
	defer peer.Close()
	gs := grpc.NewServer(append(peer.GRPCServerOptions(), grpc.MaxRecvMsgSize(64<<20))...)
	peer.Register(gs)

	if *dataDir == "" {
		*dataDir = filepath.Join("ringmaster-data", "worker-"+*id)
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	store, err := ckpt.Open(filepath.Join(*dataDir, "checkpoints.db"), ckpt.Options{})
	if err != nil {
		return fmt.Errorf("checkpoint store: %w", err)
	}
	defer store.Close()

	peakFLOPS := *peakGFLOPS * 1e9
	if *peakGFLOPS == 0 {
		// Measured on the cores matrix products use, before any job runs.
		n := *threads
		if n <= 0 {
			n = runtime.NumCPU()
		}
		f, isa, err := peak.Measure(n, 200*time.Millisecond)
		if err != nil {
			log.Warn("MFU not exported: no peak to divide by; set --peak-gflops", "err", err)
		}
		peakFLOPS = f
		log.Info("measured peak", "gflops", f/1e9, "threads", n, "isa", isa)
	}
	client := coord.NewClient(strings.Split(*coords, ","), coordDial...)
	if tlsSrc != nil {
		client.RedialOnChange(tlsSrc.Version) // after a rotation, calls present the new certificate
	}
	defer client.Close()
	w, err := train.NewWorker(train.WorkerConfig{
		ID: *id, PeerAddr: peerAddr, Cores: *cores, Peer: peer, Coord: train.CoordinatorClient(client), Checkpoints: store,
		OutDir: *outDir, PeerTimeout: *peerTimeout, Memory: *memoryMiB << 20, Logger: log,
		Registerer: reg, PeakFLOPS: max(peakFLOPS, 0),
		// --threads is the GEMM's; the layers' own loops keep GOMAXPROCS
		// goroutines, as they always have (their LayerNorm partial sums
		// follow the pool's size, so changing it moves the last bits).
		Compute: model.Compute{GEMM: gemm},
	})
	if err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(lis); err != nil {
			return fmt.Errorf("peer serve: %w", err)
		}
		return nil
	})
	var hs *http.Server
	if *httpAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
			if !w.Ready() {
				http.Error(rw, "not ready: no session with the coordinator leader yet", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(rw, "ok")
		})
		hs = &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http serve: %w", err)
			}
			return nil
		})
	}
	log.Info("worker started", "id", *id, "peer", peerAddr, "coordinators", *coords, "gemm", gemm.Path())
	g.Go(func() error {
		err := w.Run(ctx)
		gs.Stop()
		if hs != nil {
			_ = hs.Close()
		}
		return err
	})
	return g.Wait()
}
