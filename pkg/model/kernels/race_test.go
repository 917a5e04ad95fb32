//go:build race

package kernels

// raceEnabled: the race detector makes sync.Pool drop items on purpose
// (so allocation counts are meaningless) and slows the reference loops.
const raceEnabled = true
