package allreduce

import (
	"errors"
	"strconv"

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

type metrics struct {
	sent       prometheus.Counter
	received   prometheus.Counter
	duration   *prometheus.HistogramVec // by collective kind
	peerErrors *prometheus.CounterVec   // by peer rank
}

// newMetrics creates the collectors and registers them on reg (if not nil).
// Communicators of successive generations share the collectors already
// registered on reg.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricBytesSent, Help: "Payload bytes sent to peers by collectives.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricBytesReceived, Help: "Payload bytes received from peers by collectives.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricDuration,
			Help:    "Duration of successful collectives, by kind.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 12), // 10µs … ~42s
		}, []string{"op"}),
		peerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPeerErrors, Help: "Collectives failed by an error attributed to a peer, by peer rank.",
		}, []string{"peer"}),
	}
	if reg == nil {
		return m
	}
	m.sent = register(reg, m.sent)
	m.received = register(reg, m.received)
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
