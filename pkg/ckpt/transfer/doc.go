// Package transfer moves stored checkpoint shards between workers over the
// peer gRPC service (PeerCheckpoints), with no coordinator on the path.
//
// A shard travels as its payload (parameters, then AdamW m, then v, as
// little-endian float32) cut into fixed pieces of PieceBytes, each with a
// CRC32C, after a first message that describes the shard. The payload's
// SHA-256 is the one the store records (ckpt.Info.SHA256) and the commit
// record names, so a fetched copy is checked end to end against what the
// coordinator committed, whichever holder sent it.
//
// Fetch asks holders in turn. A holder that dies, refuses or sends a piece
// that fails its CRC is dropped, and the next one continues from the first
// piece not yet received: the pieces of every holder are interchangeable
// because their payloads are the same bytes. A copy whose SHA-256 is wrong
// is discarded whole and fetched again from holders not yet tried.
//
// Server serves a worker's own store and hands offers (a peer saying "I
// hold a new shard the generation wants you to copy") to the worker, which
// decides whether to fetch.
package transfer
