// Package dashboard serves the coordinators' operator view: a JSON API under
// /api/v1/ and one embedded page at / that polls it.
//
// Progress history (loss, tokens/s per step) and the job event timeline are
// soft state kept by a [Recorder] on every coordinator, in bounded rings:
//
//   - the event timeline is derived by diffing successive views of the
//     replicated FSM (job submitted, each generation with its reason,
//     checkpoints committed, state changes). Every node applies the same log,
//     so every node derives the same timeline; nothing new goes through raft.
//     A node started from a snapshot seeds it from the current state
//     (submission, current generation, every committed checkpoint, state).
//   - progress points come from worker heartbeats, which reach only the
//     leader and are not raft commands (one per worker per step would flood
//     the log). The leader samples its own in-memory progress; a follower
//     samples the leader's through the gRPC GetJob call (the same path
//     `ringctl` reads), so a follower's page shows the leader's view.
//
// Heartbeat ages exist only on the leader; a follower reports them as null.
package dashboard
