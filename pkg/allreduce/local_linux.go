package allreduce

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
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

// samePeerUser checks, with SO_PEERCRED, that the process at the other end
// of a Unix-socket connection runs as this process's user: a same-host
// link carries no certificate, and another user's process must not be able
// to use a token it somehow learned.
func samePeerUser(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return &tlsauth.Rejection{Reason: "peer_credentials", Err: fmt.Errorf("local bulk link is a %T, not a Unix socket: %w", c, ErrUnauthorized)}
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return &tlsauth.Rejection{Reason: "peer_credentials", Err: fmt.Errorf("local bulk link: %v: %w", err, ErrUnauthorized)}
	}
	var cred *syscall.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return &tlsauth.Rejection{Reason: "peer_credentials", Err: fmt.Errorf("local bulk link: SO_PEERCRED: %v%v: %w", err, credErr, ErrUnauthorized)}
	}
	if int(cred.Uid) != os.Getuid() {
		return &tlsauth.Rejection{Reason: "peer_credentials", Err: fmt.Errorf("local bulk link from pid %d of uid %d, this worker runs as uid %d: %w", cred.Pid, cred.Uid, os.Getuid(), ErrUnauthorized)}
	}
	return nil
}
