package allreduce

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAllReduceGRPC(t *testing.T) {
	const chunkBytes = 4 << 10
	for _, mode := range []Mode{ModeBulk, ModeTCP, ModeGRPC} {
		for n := 1; n <= 8; n++ {
			g, _ := newGRPCGroup(t, n, mode, 10*time.Second, Options{ChunkBytes: chunkBytes, SmallBytes: 1 << 10})
			ctx := testCtx(t)
			for _, l := range []int{0, 1, n - 1, 13, 1021, chunkBytes/4 + 1, 5*n*chunkBytes/4 + 3} {
				for _, op := range []Op{Sum, Avg} {
					name := fmt.Sprintf("mode=%d/n=%d/len=%d/%v", mode, n, l, op)
					in := inputs(uint64(n*1000+l), n, l)
					bufs := clone(in)
					noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], op) }))
					for r := range n {
						if !bitsEqual(bufs[r], bufs[0]) {
							t.Fatalf("%s: rank %d differs from rank 0", name, r)
						}
					}
					if err := closeTo(bufs[0], naive(in, op), n); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
				}
			}
			g.close()
		}
	}
}

func TestCollectivesBulk(t *testing.T) {
	const n, l = 3, 10007
	g, _ := newGRPCGroup(t, n, ModeBulk, 10*time.Second, Options{ChunkBytes: 4 << 10})
	ctx := testCtx(t)
	in := inputs(3, n, l)
	bufs := clone(in)
	noErrors(t, g.each(func(r int, c *Communicator) error {
		h := c.ReduceScatterAsync(ctx, bufs[r], Avg)
		h2 := c.AllGatherAsync(ctx, bufs[r])
		if err := h.Wait(); err != nil {
			return err
		}
		return h2.Wait()
	}))
	for r := range n {
		if !bitsEqual(bufs[r], bufs[0]) {
			t.Fatalf("rank %d differs", r)
		}
	}
	if err := closeTo(bufs[0], naive(in, Avg), n); err != nil {
		t.Fatal(err)
	}
	noErrors(t, g.each(func(r int, c *Communicator) error {
		if err := c.Broadcast(ctx, bufs[r], 2); err != nil {
			return err
		}
		return c.Barrier(ctx)
	}))
}

// TestSameHostLinksUseUnixSocket: bulk links between workers on one host and
// network namespace go over the Unix socket; ModeTCP, a listener without the
// local socket, or a peer on another host (a different host id) use TCP.
func TestSameHostLinksUseUnixSocket(t *testing.T) {
	bulk := ServerOptions{BulkAddr: "127.0.0.1:0"}
	noLocal := ServerOptions{BulkAddr: "127.0.0.1:0", NoLocalBulk: true}
	for _, tc := range []struct {
		name      string
		mode      Mode
		opts      ServerOptions
		otherHost bool
		want      string
	}{
		{"same host", ModeBulk, bulk, false, "unix"},
		{"ModeTCP", ModeTCP, bulk, false, "tcp"},
		{"NoLocalBulk", ModeBulk, noLocal, false, "tcp"},
		{"other host", ModeBulk, bulk, true, "tcp"},
		{"grpc", ModeGRPC, ServerOptions{}, false, "grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == "unix" && hostID() == "" {
				t.Skip("no host id on this platform")
			}
			const n = 3
			var ws []*worker
			var addrs []string
			for r := range n {
				w := startWorkerWith(t, tc.opts)
				if tc.otherHost {
					w.srv.hostID = fmt.Sprintf("host-%d", r)
				}
				ws = append(ws, w)
				addrs = append(addrs, w.addr)
			}
			g := &group{}
			var eps []*endpoint
			for r, w := range ws {
				tr, err := w.srv.Join(GroupConfig{Job: "j", Generation: 1, Rank: r, Peers: addrs, PeerTimeout: 10 * time.Second, Mode: tc.mode})
				if err != nil {
					t.Fatal(err)
				}
				eps = append(eps, tr.(*endpoint))
				g.comms = append(g.comms, New(tr, Options{ChunkBytes: 4 << 10, SmallBytes: 1 << 10}))
			}
			t.Cleanup(g.close)
			ctx := testCtx(t)
			in := inputs(11, n, 40_009)
			bufs := clone(in)
			noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }))
			if err := closeTo(bufs[0], naive(in, Sum), n); err != nil {
				t.Fatal(err)
			}
			// The ring dials each rank's successor (the others stay unused).
			for r, ep := range eps {
				next := ep.out[(r+1)%n]
				next.mu.Lock()
				kind := next.kind
				next.mu.Unlock()
				if kind != tc.want {
					t.Errorf("link %d→%d carries frames over %q, want %q", r, (r+1)%n, kind, tc.want)
				}
				// The peer counts as on this host exactly when host ids match;
				// that decides whether small receives poll before parking.
				wantSame := int32(1)
				if tc.otherHost {
					wantSame = 0
				}
				if got := ep.sameHost.Load(); got != wantSame {
					t.Errorf("rank %d counts %d peers on its host, want %d", r, got, wantSame)
				}
			}
		})
	}
}

// TestMetricsNameTheTransport: the byte counters say which collective moved
// the bytes and over which transport, and sent equals received.
func TestMetricsNameTheTransport(t *testing.T) {
	bulk := ServerOptions{BulkAddr: "127.0.0.1:0"}
	for _, tc := range []struct {
		mode Mode
		opts ServerOptions
		want string
	}{
		{ModeBulk, bulk, TransportUnix},
		{ModeTCP, bulk, TransportTCP},
		{ModeGRPC, ServerOptions{}, TransportGRPC},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if tc.want == TransportUnix && hostID() == "" {
				t.Skip("no host id on this platform")
			}
			const n, l = 2, 40_000
			reg := prometheus.NewRegistry()
			var addrs []string
			var ws []*worker
			for range n {
				w := startWorkerWith(t, tc.opts)
				ws = append(ws, w)
				addrs = append(addrs, w.addr)
			}
			g := &group{}
			for r, w := range ws {
				tr, err := w.srv.Join(GroupConfig{Job: "j", Generation: 1, Rank: r, Peers: addrs, PeerTimeout: 10 * time.Second, Mode: tc.mode})
				if err != nil {
					t.Fatal(err)
				}
				g.comms = append(g.comms, New(tr, Options{Registerer: reg}))
			}
			t.Cleanup(g.close)
			ctx := testCtx(t)
			bufs := clone(inputs(3, n, l))
			noErrors(t, g.each(func(r int, c *Communicator) error { return c.AllReduce(ctx, bufs[r], Sum) }))
			noErrors(t, g.each(func(r int, c *Communicator) error { return c.Broadcast(ctx, bufs[r], 0) }))
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			bytes := map[string]float64{} // "sent|received op transport"
			for _, mf := range mfs {
				dir := map[string]string{metricBytesSent: "sent", metricBytesReceived: "received"}[mf.GetName()]
				if dir == "" {
					continue
				}
				for _, m := range mf.GetMetric() {
					lv := map[string]string{}
					for _, lp := range m.GetLabel() {
						lv[lp.GetName()] = lp.GetValue()
					}
					bytes[dir+" "+lv["op"]+" "+lv["transport"]] += m.GetCounter().GetValue()
				}
			}
			for _, op := range []string{"all_reduce", "broadcast"} {
				s, r := bytes["sent "+op+" "+tc.want], bytes["received "+op+" "+tc.want]
				if s <= 0 || s != r {
					t.Errorf("%s over %s: %v bytes sent, %v received; want equal and > 0 (all: %v)", op, tc.want, s, r, bytes)
				}
			}
			// A 2-rank ring all-reduce sends half the buffer twice per rank.
			if s := bytes["sent all_reduce "+tc.want]; s != float64(n*2*(l/2)*4) {
				t.Errorf("all_reduce sent %v bytes, want %v", s, n*2*(l/2)*4)
			}
			for k := range bytes {
				if !strings.HasSuffix(k, " "+tc.want) {
					t.Errorf("bytes counted under %q in a %s group", k, tc.want)
				}
			}
		})
	}
}
