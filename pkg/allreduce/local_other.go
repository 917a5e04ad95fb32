//go:build !linux

package allreduce

import "net"

// hostID is empty off Linux: same-host peers use TCP (no abstract sockets).
func hostID() string { return "" }

func localBulkName() string { return "" }

// samePeerUser is never reached off Linux (no local bulk listener).
func samePeerUser(net.Conn) error { return ErrUnauthorized }
