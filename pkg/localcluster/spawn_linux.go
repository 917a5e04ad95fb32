package localcluster

import "syscall"

// childAttrs puts a child in its own process group (Ctrl-C reaches only
// ringctl, which stops the cluster in order) and has the kernel SIGKILL it
// when the thread that started it dies — which the spawner keeps alive for
// the whole life of the parent, so a parent killed by SIGKILL, SIGPIPE or a
// closed terminal leaves no coordinator or worker behind.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
