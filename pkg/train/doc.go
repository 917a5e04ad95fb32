// Package train is the worker's training loop: batch → forward/backward →
// (all-reduce) → clip → AdamW, with evaluation, held-out scoring, progress
// reports and saving the final weights with their tokenizer and job spec.
//
// Trainer holds one model replica and its optimizer; Run drives it for a whole
// job in one process. In one process WithLanes splits each micro-batch across
// extra replicas that share the weights and run at once, one core each
// (lanes.go). How the models compute is an option too (WithCompute: the
// GEMM and thread budget; without it the trainer makes and owns a fast
// GEMM), never a process-wide setting. The loop holds no cluster truth of its own: in a
// cluster, the coordinator tells a worker which rows of each global batch are
// its own (DESIGN.md "Determinism").
//
// Worker is one cluster member's lifecycle (session.go: register, session,
// heartbeats; generation.go: a generation's groups and steps; resume.go:
// checkpoints, resume, finish), and RunProcess the whole worker process
// around it (peer service, checkpoint store, /metrics): cmd/worker is its
// flags, and TestWorkersInProcessTrainLikeOneProcess runs four of them with
// a coordinator inside one test.
package train
