//go:build !linux

package localcluster

import "syscall"

// childAttrs puts a child in its own process group. Without Linux's
// Pdeathsig a child outlives a parent killed by SIGKILL.
func childAttrs() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
