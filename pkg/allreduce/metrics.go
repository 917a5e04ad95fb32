package allreduce

import (
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	names "github.com/ringmaster-ml/ringmaster/pkg/metrics"
)

// Metric names live with all the others in pkg/metrics.
const (
	metricBytesSent     = names.CommBytesSent
	metricBytesReceived = names.CommBytesReceived
	metricDuration      = names.CommCollectiveSecs
	metricPeerErrors    = names.CommPeerErrorsTotal
)

// Values of the byte counters' transport label: how the bytes travelled.
const (
	TransportUnix   = names.TransportUnix   // bulk stream over a Unix socket (same host)
	TransportTCP    = names.TransportTCP    // bulk stream over TCP
	TransportGRPC   = names.TransportGRPC   // the gRPC Frames stream
	TransportInproc = names.TransportInproc // in-process links (tests, benchmarks)
)

// linkKinder is the optional Transport method that says how frames to or
// from a peer travel ("" while unknown); transports without it count as
// TransportOther.
type linkKinder interface {
	LinkKind(peer int, sending bool) string
}

var transports = [...]string{TransportUnix, TransportTCP, TransportGRPC, TransportInproc, names.TransportOther}

func transportIndex(kind string) int {
	for i, t := range transports[:len(transports)-1] {
		if t == kind {
			return i
		}
	}
	return len(transports) - 1
}

type metrics struct {
	sent       *byteCounters
	received   *byteCounters
	duration   *prometheus.HistogramVec // by collective kind
	peerErrors *prometheus.CounterVec   // by peer rank
}

// byteCounters curries a bytes CounterVec by (op, transport) lazily and
// keeps the children, so that counting a frame does not allocate.
type byteCounters struct {
	vec   *prometheus.CounterVec
	cells [KindBarrier + 1][len(transports)]atomic.Pointer[prometheus.Counter]
}

func (b *byteCounters) add(k Kind, transport string, n int) {
	if k > KindBarrier {
		k = 0
	}
	cell := &b.cells[k][transportIndex(transport)]
	c := cell.Load()
	if c == nil {
		op := "unknown"
		if k != 0 {
			op = k.String()
		}
		child := b.vec.WithLabelValues(op, transports[transportIndex(transport)])
		cell.CompareAndSwap(nil, &child)
		c = cell.Load()
	}
	(*c).Add(float64(n))
}

// newMetrics creates the collectors and registers them on reg (if not nil).
// Communicators of successive generations share the collectors already
// registered on reg.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: &byteCounters{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricBytesSent, Help: "Payload bytes sent to peers by collectives, by collective and transport.",
		}, []string{names.LabelOp, names.LabelTransport})},
		received: &byteCounters{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricBytesReceived, Help: "Payload bytes received from peers by collectives, by collective and transport.",
		}, []string{names.LabelOp, names.LabelTransport})},
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricDuration,
			Help:    "Duration of successful collectives, by kind.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 12), // 10µs … ~42s
		}, []string{names.LabelOp}),
		peerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPeerErrors, Help: "Collectives failed by an error attributed to a peer, by peer rank.",
		}, []string{"peer"}),
	}
	if reg == nil {
		return m
	}
	m.sent.vec = register(reg, m.sent.vec)
	m.received.vec = register(reg, m.received.vec)
	m.duration = register(reg, m.duration)
	m.peerErrors = register(reg, m.peerErrors)
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting collector of another type: keep ours unregistered.
	}
	return c
}

func (m *metrics) peerError(err error) {
	var pe *PeerError
	if errors.As(err, &pe) {
		m.peerErrors.WithLabelValues(strconv.Itoa(pe.Rank)).Inc()
	}
}
