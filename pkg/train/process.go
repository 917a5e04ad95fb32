package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/internal/peak"
	"github.com/ringmaster-ml/ringmaster/internal/sysmem"
	"github.com/ringmaster-ml/ringmaster/pkg/allreduce"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt"
	"github.com/ringmaster-ml/ringmaster/pkg/ckpt/transfer"
	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/kernels"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// ProcessConfig is a whole worker process (cmd/worker is its flags): the
// peer service it serves, the coordinators it reports to, where it keeps
// checkpoints and models, and how it computes.
type ProcessConfig struct {
	ID           string   // unique worker id; with TLS, the certificate's name
	Coordinators []string // any members' gRPC addresses; the leader is found
	Listen       string   // peer collective gRPC listen address (port 0: any)
	Advertise    string   // address peers dial ("": the listener's)
	// BulkAddr is the raw TCP bulk listener ("": the listen host, any
	// port; "off": none, frames travel on gRPC).
	BulkAddr    string
	NoLocalBulk bool   // refuse the same-host Unix-socket bulk streams
	OutDir      string // finished jobs' models
	DataDir     string // this worker's checkpoints (checkpoints.db)
	HTTPAddr    string // /metrics, /healthz, /readyz ("": off)
	// PeakFLOPS is the MFU denominator: 0 measures the fp32 FMA peak on
	// Threads cores for 200 ms at start, < 0 exports no MFU.
	PeakFLOPS   float64
	Cores       int          // advertised to the scheduler
	Threads     int          // the GEMM's goroutines (0: all cores)
	GEMM        kernels.Path // the GEMM's code path (Auto: the best this CPU has)
	PeerTimeout time.Duration
	Memory      int64           // bytes a job may use (0: what is free)
	TLS         *tlsauth.Source // nil: plaintext everywhere
	Logger      *slog.Logger
}

// RunProcess runs a worker process until ctx ends: it serves the peer
// collective service, registers with the coordinators and trains what it
// is assigned.
func RunProcess(ctx context.Context, cfg ProcessConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var coordDial []grpc.DialOption
	if cfg.TLS != nil {
		me := cfg.TLS.Identity()
		if me.Role != tlsauth.RoleWorker {
			return fmt.Errorf("--tls-dir: certificate names %s, a worker needs role worker", me)
		}
		if cfg.ID != me.Name {
			return fmt.Errorf("--id %q but the certificate names worker %q: a worker can act only as its certificate's id", cfg.ID, me.Name)
		}
		coordDial = []grpc.DialOption{cfg.TLS.DialOption(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleCoordinator}})}
	}
	gemm, err := kernels.New(kernels.Options{Threads: cfg.Threads, Path: cfg.GEMM})
	if err != nil {
		return err
	}
	defer gemm.Close()

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("peer listen: %w", err)
	}
	peerAddr := cfg.Advertise
	if peerAddr == "" {
		peerAddr = lis.Addr().String()
	}
	bulkAddr := cfg.BulkAddr
	switch bulkAddr {
	case "off":
		bulkAddr = ""
	case "":
		host, _, _ := net.SplitHostPort(lis.Addr().String())
		bulkAddr = net.JoinHostPort(host, "0")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), metrics.NewPeakRSS(sysmem.PeakRSS))
	// With TLS every peer link is mutual TLS, accepted only from the worker
	// the generation puts at that rank (refusals counted on /metrics).
	peerOpts := allreduce.ServerOptions{BulkAddr: bulkAddr, NoLocalBulk: cfg.NoLocalBulk, Logger: log}
	if cfg.TLS != nil {
		peerOpts.TLS, peerOpts.Rejections = cfg.TLS, tlsauth.NewRejections(reg, log)
	}
	peer, err := allreduce.NewServer(peerOpts)
	if err != nil {
		_ = lis.Close()
		return err
	}
	defer peer.Close()
	// The same server carries the checkpoint transfers: workers fetch and
	// offer shards; operators (ringctl ckpt) may fetch.
	ckptRules := tlsauth.Policy{
		pb.PeerCheckpoints_FetchShard_FullMethodName: {Roles: []tlsauth.Role{tlsauth.RoleWorker, tlsauth.RoleOperator}},
		pb.PeerCheckpoints_OfferShard_FullMethodName: {Roles: []tlsauth.Role{tlsauth.RoleWorker}},
	}
	gs := grpc.NewServer(append(peer.GRPCServerOptions(ckptRules), grpc.MaxRecvMsgSize(64<<20))...)
	peer.Register(gs)

	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		_ = lis.Close()
		return err
	}
	store, err := openStore(filepath.Join(cfg.DataDir, "checkpoints.db"), log)
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("checkpoint store: %w", err)
	}
	defer store.Close()

	peakFLOPS := cfg.PeakFLOPS
	if peakFLOPS == 0 {
		// Measured on the cores matrix products use, before any job runs.
		n := cfg.Threads
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
	client := coord.NewClient(cfg.Coordinators, coordDial...)
	if cfg.TLS != nil {
		client.RedialOnChange(cfg.TLS.Version) // after a rotation, calls present the new certificate
	}
	defer client.Close()
	w, err := NewWorker(WorkerConfig{
		ID: cfg.ID, PeerAddr: peerAddr, Cores: cfg.Cores, Peer: peer, Labels: machineLabels(), Coord: CoordinatorClient(client), Checkpoints: store,
		OutDir: cfg.OutDir, PeerTimeout: cfg.PeerTimeout, Memory: cfg.Memory, Logger: log,
		Registerer: reg, PeakFLOPS: max(peakFLOPS, 0),
		// Threads is the GEMM's; the layers' own loops keep GOMAXPROCS
		// goroutines, as they always have (their LayerNorm partial sums
		// follow the pool's size, so changing it moves the last bits).
		Compute:         model.Compute{GEMM: gemm},
		PeerCredentials: peerCredentials(cfg.TLS),
	})
	if err != nil {
		_ = lis.Close()
		return err
	}
	pb.RegisterPeerCheckpointsServer(gs, &transfer.Server{Store: store, Offer: w.Offer})

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(lis); err != nil {
			return fmt.Errorf("peer serve: %w", err)
		}
		return nil
	})
	var hs *http.Server
	if cfg.HTTPAddr != "" {
		mux := http.NewServeMux()
		metrics.Endpoints(mux, reg, func() error {
			if !w.Ready() {
				return errors.New("no session with the coordinator leader yet")
			}
			return nil
		})
		hs = &http.Server{Addr: cfg.HTTPAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error { return metrics.ListenAndServe(hs) })
	}
	log.Info("worker started", "id", cfg.ID, "peer", peerAddr, "coordinators", cfg.Coordinators, "gemm", gemm.Path())
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

// peerCredentials dials a peer worker's PeerCheckpoints with mutual TLS,
// expecting that worker's certificate (nil without TLS: plaintext).
func peerCredentials(src *tlsauth.Source) func(workerID string) grpc.DialOption {
	if src == nil {
		return nil
	}
	return func(id string) grpc.DialOption {
		return src.DialOption(tlsauth.Expect{Roles: []tlsauth.Role{tlsauth.RoleWorker}, Name: id})
	}
}

// openStore opens the worker's checkpoint file. One that is corrupt (a
// truncated copy, not a bbolt file) is moved aside, kept for inspection,
// and replaced by an empty store: the worker then fetches the shards it
// needs from their other holders instead of failing to start.
func openStore(path string, log *slog.Logger) (*ckpt.Store, error) {
	st, err := ckpt.Open(path, ckpt.Options{})
	if !errors.Is(err, ckpt.ErrCorrupt) {
		return st, err
	}
	aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, fmt.Errorf("%w (and moving it aside failed: %v)", err, rerr)
	}
	log.Error("checkpoint store is corrupt; moved aside, starting with an empty one (shards will be fetched from their other holders)",
		"path", path, "moved_to", aside, "err", err)
	return ckpt.Open(path, ckpt.Options{})
}

// machineLabels names the machine this worker runs on (coord.HostLabel: the
// kernel's boot id, shared by the containers of one host), so that the
// coordinator puts checkpoint copies on other machines first.
func machineLabels() map[string]string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil
	}
	return map[string]string{coord.HostLabel: strings.TrimSpace(string(b))}
}
