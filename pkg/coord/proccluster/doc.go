// Package proccluster runs a coordinator group as real OS processes on
// 127.0.0.1 (the cmd/coordinator binary), for end-to-end tests and the
// failover benchmark: start, SIGKILL, restart from the data dir, find the
// leader. It is test support: it never runs inside a coordinator.
package proccluster
