package allreduce

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// worker is one in-process "worker": a gRPC server with the peer service.
type worker struct {
	srv  *Server
	gs   *grpc.Server
	addr string
	done chan struct{}
}

func startWorker(t testing.TB, bulk bool) *worker {
	t.Helper()
	opts := ServerOptions{}
	if bulk {
		opts.BulkAddr = "127.0.0.1:0"
	}
	return startWorkerWith(t, opts)
}

func startWorkerWith(t testing.TB, opts ServerOptions) *worker {
	t.Helper()
	srv, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCServerOptions(nil)...)
	srv.Register(gs)
	w := &worker{srv: srv, gs: gs, addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		gs.Serve(ln)
	}()
	t.Cleanup(w.kill)
	return w
}

// kill stops the worker abruptly: connections drop, groups close.
func (w *worker) kill() {
	w.gs.Stop()
	w.srv.Close()
	<-w.done
}

// newGRPCGroup starts n workers and joins one group on each.
func newGRPCGroup(t testing.TB, n int, mode Mode, timeout time.Duration, opts Options) (*group, []*worker) {
	t.Helper()
	var ws []*worker
	var addrs []string
	for range n {
		w := startWorker(t, mode != ModeGRPC)
		ws = append(ws, w)
		addrs = append(addrs, w.addr)
	}
	g := &group{}
	for r, w := range ws {
		tr, err := w.srv.Join(GroupConfig{Job: "job-t", Generation: 7, Rank: r, Peers: addrs, PeerTimeout: timeout, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		g.comms = append(g.comms, New(tr, opts))
	}
	t.Cleanup(g.close)
	return g, ws
}
