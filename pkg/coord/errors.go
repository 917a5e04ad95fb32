package coord

import "errors"

// Sentinel errors callers act on; check them with errors.Is.
var (
	// ErrNotLeader: the node is not the leader; the write was not applied.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrNoQuorum: no leader is known or the leader lost its quorum; the write
	// was not applied (or its outcome is unknown, see ErrOutcomeUnknown).
	ErrNoQuorum = errors.New("no quorum")
	// ErrOutcomeUnknown: the command was handed to raft but leadership was
	// lost before it committed; it may or may not take effect.
	ErrOutcomeUnknown = errors.New("write outcome unknown")

	ErrJobNotFound       = errors.New("job not found")
	ErrJobExists         = errors.New("job already exists")
	ErrJobFinished       = errors.New("job already finished")
	ErrWorkerNotFound    = errors.New("worker not found")
	ErrDuplicateWorker   = errors.New("worker id already registered at another address")
	ErrBadGeneration     = errors.New("invalid generation")
	ErrStaleCheckpoint   = errors.New("checkpoint is not newer than the last committed one")
	ErrProtocolVersion   = errors.New("protocol version mismatch")
	ErrModelConfigHash   = errors.New("model config hash mismatch")
	ErrInvalidCommand    = errors.New("invalid command")
	ErrCoordinatorAbsent = errors.New("coordinator not found")
)

// ProtocolVersion is the worker ⇄ coordinator protocol version; a worker
// registering with another version is refused.
const ProtocolVersion = 1
