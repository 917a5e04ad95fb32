// Package parallel lays a job out on its workers: the device mesh
// (world = DP × TP), which rank owns which rows of the global batch, which
// attention heads and MLP columns, and the data- and tensor-parallel groups a
// rank belongs to. It never opens sockets: collectives go through the
// Communicator the caller supplies.
//
// Split is the project's one "n items into parts" function: the workers'
// batch rows (Mesh.Rows), the rank table the coordinator publishes
// (coord.Layout builds it from a Mesh, so what `ringctl status` shows is
// what the workers compute), the parts of a ring collective and ZeRO-1's
// optimizer slices (allreduce.Part) and the GEMM's blocks over threads
// (model/kernels) all call it. This package imports nothing of the
// project, so every room, down to the kernels, can use it without a cycle;
// parallel logic that needs the model or a Communicator belongs in
// subpackages of it: ddp (the DP gradient buckets and their overlap with
// backward, ZeRO-1) and tp (the Megatron tensor-parallel layers the model
// reaches through its model.TensorParallel interface).
package parallel
