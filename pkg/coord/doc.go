// Package coord is the coordinator room: the Raft-replicated cluster state
// (jobs, workers, generations with their rank tables, committed checkpoints),
// the plumbing that runs it on hashicorp/raft, the scheduler that turns a job
// spec and the live workers into a generation, the failure detector, and the
// coordinator gRPC service and its client.
//
// Layers, bottom up:
//
//   - store.go: ClusterState and the deterministic apply of each Command.
//     No clock, no I/O. fsm.go wraps it as a raft.FSM.
//   - scheduler.go (Plan) and detector.go (Detector): pure, data-driven state
//     machines. Plan reads the state and proposes commands; the Detector is fed
//     heartbeats and times and says who is overdue. testdata/*.txt scripts
//     drive both.
//   - node.go: raft (bbolt log/stable store, file snapshots, TCP transport
//     with a StreamLayer seam for TLS), bootstrap / join, Apply with leader
//     and quorum errors. leader.go: the loop that runs only on the leader and
//     feeds the detector and scheduler, committing what they propose.
//   - service.go: the gRPC API. Reads are served locally by any node; writes
//     on a follower fail with Unavailable and a "ringmaster-leader" trailer
//     that client.go follows.
//
// The package never does tensor math and never holds training state beyond
// what the Raft log says.
package coord
