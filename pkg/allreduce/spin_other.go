//go:build !linux

package allreduce

import (
	"net"
	"time"
)

// spinUntilReadable is a no-op off Linux: reads park on the poller at once.
func spinUntilReadable(net.Conn, time.Duration) {}
