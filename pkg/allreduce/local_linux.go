package allreduce

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
)

// hostID names this process's kernel and network namespace: two processes
// with the same hostID can reach each other's abstract Unix sockets (which
// live in the network namespace). Empty when /proc does not tell.
func hostID() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	netns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + netns
}

// localBulkName is a fresh abstract Unix socket name for a bulk listener.
// Abstract names need no file (nothing to clean up after a crash) and are
// reachable only from the same network namespace.
func localBulkName() string {
	var b [12]byte
	rand.Read(b[:])
	return "@ringmaster-bulk-" + hex.EncodeToString(b[:])
}
