//go:build !amd64 || purego || race

package allreduce

// addToAsm does nothing here: addTo's Go loop does all the elements. Race
// builds use it too, so that the race detector sees every access to the
// buffers.
func addToAsm(dst, src []float32) int { return 0 }
