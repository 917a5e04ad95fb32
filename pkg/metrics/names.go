package metrics

// Metric names, in one place. Units follow Prometheus conventions:
// _seconds, _bytes, _total for counters, _ratio for fractions.
const (
	// Training (worker), labels job_id and rank.
	TrainLoss            = "ringmaster_train_loss"
	TrainValLoss         = "ringmaster_train_val_loss"
	TrainStep            = "ringmaster_train_step"
	TrainStepSeconds     = "ringmaster_train_step_seconds" // histogram
	TrainTokensTotal     = "ringmaster_train_tokens_total"
	TrainTokensPerSecond = "ringmaster_train_tokens_per_second"
	TrainMFU             = "ringmaster_train_mfu_ratio"
	TrainFLOPsPerToken   = "ringmaster_train_flops_per_token"
	TrainPeakFLOPS       = "ringmaster_train_peak_flops" // per worker, set by flag or measured once
	TrainGradNorm        = "ringmaster_train_grad_norm"
	TrainLearningRate    = "ringmaster_train_learning_rate"
	// TrainPhaseSeconds splits step time by phase (label phase: one of the
	// Phase* values); communication is split into exposed and hidden.
	TrainPhaseSeconds   = "ringmaster_train_phase_seconds_total"
	TrainNonFiniteTotal = "ringmaster_train_nonfinite_steps_total"
	TrainGeneration     = "ringmaster_train_generation"
	// ProcessResidentBytes is the process collector's resident memory
	// (collectors.NewProcessCollector, registered by every binary).
	ProcessResidentBytes = "process_resident_memory_bytes"

	// Communication (worker), defined by pkg/allreduce on these names.
	// The byte counters are labelled op (the collective) and transport
	// (Transport* values: how the bytes travelled).
	CommBytesSent       = "ringmaster_allreduce_bytes_sent_total"
	CommBytesReceived   = "ringmaster_allreduce_bytes_received_total"
	CommCollectiveSecs  = "ringmaster_allreduce_collective_duration_seconds" // label op
	CommPeerErrorsTotal = "ringmaster_allreduce_peer_errors_total"           // label peer (a rank)

	// Checkpoints (worker).
	CkptSaveSeconds            = "ringmaster_ckpt_save_seconds" // histogram
	CkptLoadSeconds            = "ringmaster_ckpt_load_seconds" // histogram
	CkptSaveBytesTotal         = "ringmaster_ckpt_save_bytes_total"
	CkptLoadBytesTotal         = "ringmaster_ckpt_load_bytes_total"
	CkptStallSeconds           = "ringmaster_ckpt_stall_seconds" // histogram: training blocked by a save
	CkptChecksumFailuresTotal  = "ringmaster_ckpt_checksum_failures_total"
	CkptSavesSkippedTotal      = "ringmaster_ckpt_saves_skipped_total" // due while the previous save was still writing
	CkptSaveFailuresTotal      = "ringmaster_ckpt_save_failures_total" // write or fsync failed (disk full, read-only)
	CkptReplicaTransfersTotal  = "ringmaster_ckpt_replica_transfers_total"
	CkptPeerTransferSeconds    = "ringmaster_ckpt_peer_transfer_seconds" // histogram, kind copy|fetch
	CkptPeerTransferBytesTotal = "ringmaster_ckpt_peer_transfer_bytes_total"
	RecoverySeconds            = "ringmaster_recovery_seconds"        // histogram: worker lost → first step of the new generation
	RecoveryStepsReplayed      = "ringmaster_recovery_steps_replayed" // histogram

	// Control plane (coordinator).
	RaftState           = "ringmaster_raft_state" // label state, 1 for the current one
	RaftTerm            = "ringmaster_raft_term"
	RaftCommitIndex     = "ringmaster_raft_commit_index"
	RaftAppliedIndex    = "ringmaster_raft_applied_index"
	RaftLastContactSecs = "ringmaster_raft_last_contact_seconds" // followers: since the leader was heard; leader: 0
	RaftPeers           = "ringmaster_raft_peers"                // voters in the configuration
	RaftHasLeader       = "ringmaster_raft_has_leader"
	ClusterWorkers      = "ringmaster_cluster_workers" // label state
	ClusterJobs         = "ringmaster_cluster_jobs"    // label state
	JobGeneration       = "ringmaster_job_generation"
	JobCommittedStep    = "ringmaster_job_committed_step"
	JobMaxSteps         = "ringmaster_job_max_steps"
	JobRanks            = "ringmaster_job_ranks"
	// JobCheckpointAge is the seconds since the job's newest committed
	// checkpoint was committed (since it started running when it has none),
	// as this coordinator saw it; JobCheckpointInterval is
	// checkpoint.interval in steps, so an alert can compare the age with
	// interval × step seconds.
	JobCheckpointAge       = "ringmaster_job_checkpoint_age_seconds"
	JobCheckpointInterval  = "ringmaster_job_checkpoint_interval_steps"
	WorkerHeartbeatAge     = "ringmaster_worker_heartbeat_age_seconds" // leader only, label worker
	RankStep               = "ringmaster_rank_step"                    // leader only, labels job_id, rank, worker
	RankLoss               = "ringmaster_rank_loss"                    // leader only
	RankTokensPerSecond    = "ringmaster_rank_tokens_per_second"       // leader only
	RankStepSeconds        = "ringmaster_rank_step_seconds"            // leader only: the rank's recent median step time
	RankStragglerScore     = "ringmaster_rank_straggler_score"         // leader only: step seconds over the median of the rank's DP group
	CoordIsLeader          = "ringmaster_coord_is_leader"
	CoordCommandsTotal     = "ringmaster_coord_commands_total"
	CoordWorkersLost       = "ringmaster_coord_workers_lost_total"
	CoordCkptDivergedTotal = "ringmaster_coord_ckpt_diverged_total"
	CoordGenerations       = "ringmaster_coord_generations_total"
	CoordHeartbeatsTotal   = "ringmaster_coord_heartbeats_total"

	// Every process: the most resident memory it has held since it started
	// (the kernel's high-water mark; client_golang's process collector
	// exports only the current figure).
	ProcessPeakRSS = "ringmaster_process_peak_resident_memory_bytes"
)

// Values of TrainPhaseSeconds' phase label.
const (
	PhaseForwardBackward = "forward_backward"
	PhaseOptimizer       = "optimizer"
	PhaseCommTP          = "comm_tp"         // tensor-parallel all-reduces (blocking)
	PhaseCommDPExposed   = "comm_dp_exposed" // gradient all-reduce after backward finished
	PhaseCommDPHidden    = "comm_dp_hidden"  // gradient all-reduce overlapped with backward
)

// Values of the communication byte counters' transport label.
const (
	TransportUnix   = "unix"   // bulk stream over a Unix socket (same host)
	TransportTCP    = "tcp"    // bulk stream over TCP
	TransportGRPC   = "grpc"   // the gRPC Frames stream
	TransportInproc = "inproc" // in-process links (tests, benchmarks)
	TransportOther  = "other"  // a transport that does not say
)

// Label names.
const (
	LabelOp        = "op"
	LabelTransport = "transport"
	LabelJob       = "job_id"
	LabelRank      = "rank"
	LabelWorker    = "worker"
	LabelState     = "state"
	LabelPhase     = "phase"
	LabelKind      = "kind"
)
