//go:build race

package allreduce

// raceBuild makes addTo a plain Go loop under -race, so that the race
// detector sees every access to the buffers (assembly is invisible to it).
const raceBuild = true
