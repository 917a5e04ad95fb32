// Package allreduce is ringmaster's data plane: collectives (all-reduce,
// reduce-scatter, all-gather, broadcast, barrier) over a group of ranks that
// exchange float32 buffers directly with each other. The coordinator is never
// on this path.
//
// A group is one generation of one job: it is created from (job, generation,
// my rank, ordered peer addresses) and is never reused; a membership change
// means a new generation and a new [Communicator].
//
// Algorithms: large buffers use the ring (reduce-scatter then all-gather,
// bandwidth term 2(n−1)/n·S), cut into chunks that are sent, received and
// reduced in a pipeline; small buffers use a direct exchange in which every
// rank sends its buffer to every other rank and each rank sums the n
// contributions in rank order. Both give every element exactly one summation
// order, so results are bit-identical on every rank.
//
// Transports sit behind [Transport]: an in-process one for tests
// ([NewInprocNetwork]) and the workers' peer service ([Server]), which carries
// frames either on gRPC streams or on raw bulk streams negotiated over gRPC
// (the default, measured faster): a Unix socket to a peer on the same host
// and network namespace, TCP to any other. A receiver waiting for a small
// frame polls briefly before it parks (see DESIGN.md).
//
// Every frame carries (job, generation, collective sequence number, chunk
// index, kind, element count); a frame that does not match what the receiver
// expects fails the collective (ErrStaleGeneration, ErrUnexpectedFrame,
// ErrMismatch) and is never reduced. A peer that sends nothing within
// Config.PeerTimeout fails the collective with ErrPeerTimeout naming the peer.
// A failed or cancelled collective breaks the group: the communicator closes
// its links so that the other ranks fail fast too, and every later call
// returns the same error. Recovery is a new generation.
//
// The package must not know what a model is: it moves and sums []float32.
package allreduce
