// Package parallel lays a job out on its workers: the device mesh
// (world = DP × TP), which rank owns which rows of the global batch, which
// attention heads and MLP columns, and the data- and tensor-parallel groups a
// rank belongs to. It never opens sockets: collectives go through the
// Communicator the caller supplies.
package parallel
