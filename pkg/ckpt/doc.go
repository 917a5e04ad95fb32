// Package ckpt is the checkpoint store a worker keeps on its own disk, and
// the arithmetic that lets a job resume with a different tensor-parallel
// layout.
//
// A checkpoint shard (Shard) is one TP rank's state at one step of one job:
// its manifest of tensor views over the flat parameter buffer (the DESIGN's
// "flat parameter buffer"), that buffer, the AdamW moments over the same
// range, the optimizer and iteration counters, the generation that wrote it
// and opaque metadata (model hash, job spec, RNG state).
//
// Format. Store keeps shards in a bbolt file:
//
//	jobs/<job id>/<step:8 bytes BE><tp:4 bytes BE>/
//	    header        "RMCK", format version (uint32 LE), JSON header, CRC32C
//	    data/000000   parameter values, little-endian float32, ≤ ChunkBytes
//	    m/000000 …    AdamW first moments, same chunking
//	    v/000000 …    AdamW second moments
//
// The header lists the CRC32C of every chunk and a SHA-256 over all chunk
// payloads in order, so a flipped bit, a missing or truncated chunk, or a
// chunk swapped for another is reported as ErrCorrupt naming the job, step,
// TP rank, chunk and the tensors it holds. Put writes a whole shard (or
// replaces one) in a single bbolt transaction, fsynced on commit: a reader
// sees the old shard or the new one, never a mix, and a crash leaves one of
// the two. Get and Verify check every checksum.
//
// Retention: Retain keeps the newest steps and any protected step (the last
// committed checkpoint); Delete and DeleteJob drop steps or jobs.
//
// Resharding: Gather assembles the shards of all TP ranks of a step into
// the whole model (laid out per a target manifest, from each tensor's shard
// information), and Reshard cuts a whole-model shard into the piece of any
// rank of any TP size. GatherFlat and ReshardFlat do the same for a bare
// buffer and manifest. They work on manifests alone: no model instance is
// needed, only the names, shapes and shard information the manifest holds
// (model.View's CopyToFull/CopyFromFull define the layout of a piece).
//
// Stat and Info give a stored shard's SHA-256 (over its payload, whatever
// the chunk size): the value workers report, the coordinator compares
// between holders and records in the commit, and transfer checks fetched
// copies against. Moving shards between workers is pkg/ckpt/transfer.
//
// The package does not decide when to checkpoint or which checkpoint is
// committed (the trainer and the coordinator do), and Store holds no
// cluster state beyond the worker's own file.
package ckpt
