//go:build race

package model

// raceEnabled: allocation counts are meaningless under the race detector.
const raceEnabled = true
