//go:build !linux

package allreduce

// hostID is empty off Linux: same-host peers use TCP (no abstract sockets).
func hostID() string { return "" }

func localBulkName() string { return "" }
