package coord

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringmaster-ml/ringmaster/pkg/metrics"
)

// Metrics are the coordinator's Prometheus collectors, registered on the
// registerer passed to NewMetrics (never the global default).
type Metrics struct {
	commands    *prometheus.CounterVec
	isLeader    prometheus.Gauge
	workersLost prometheus.Counter
	generations prometheus.Counter
	heartbeats  prometheus.Counter
	// ckptDiverged counts checkpoint steps refused because holders of one
	// shard reported different checksums.
	ckptDiverged prometheus.Counter
}

// NewMetrics creates and registers the coordinator collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metrics.CoordCommandsTotal, Help: "Raft commands applied by this node as leader.",
		}, []string{"command", "ok"}),
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: metrics.CoordIsLeader, Help: "1 while this node is the raft leader.",
		}),
		workersLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metrics.CoordWorkersLost, Help: "Workers this node declared lost as leader.",
		}),
		generations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metrics.CoordGenerations, Help: "Generations this node committed as leader.",
		}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metrics.CoordHeartbeatsTotal, Help: "Worker heartbeats received.",
		}),
		ckptDiverged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metrics.CoordCkptDivergedTotal, Help: "Checkpoint steps refused because holders of one shard reported different checksums (diverged replicas).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.commands, m.isLeader, m.workersLost, m.generations, m.heartbeats, m.ckptDiverged)
	}
	return m
}
