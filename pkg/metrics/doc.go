// Package metrics holds every Prometheus metric name of ringmaster in one
// place (names.go) and the collectors built on them: the worker's training
// series (Training, with per-job handles whose updates do not allocate) and
// the coordinator's control-plane collector (ControlPlane, which reads a
// snapshot of the node's state at scrape time).
//
// Collectors are registered on a prometheus.Registerer passed in; library
// code never touches the global default registry. Labels are bounded: job
// id (label "job_id", since Prometheus reserves "job" for the scrape job),
// rank and worker id — never a step or a peer address.
//
// It imports nothing of ringmaster, so every room can use it.
package metrics
