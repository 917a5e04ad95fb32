//go:build race

package train

// raceEnabled: the race detector allocates on its own (and sync.Pool drops
// items), so allocation counts are not meaningful under it.
const raceEnabled = true
