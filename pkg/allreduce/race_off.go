//go:build !race

package allreduce

const raceBuild = false
