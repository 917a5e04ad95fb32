// Package progress renders a cluster job's progress as one status line —
// state, bar, step, loss, throughput, ETA, checkpoint — from successive
// GetJob answers. `ringctl local` draws it while its job runs; any command
// that follows a job (`ringctl watch`) shares it so they read the same.
package progress
