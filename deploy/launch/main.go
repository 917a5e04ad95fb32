// Command launch is the entrypoint of the container images: it replaces
// {{ip}} and {{hostname}} in its arguments and in RINGMASTER_* environment
// values with this container's IPv4 address and host name, then execs the
// first argument. Images are FROM scratch, without a shell to expand
// variables, and a scaled compose service cannot give each replica its own
// address in the compose file: a worker there runs
//
//	/launch /worker --listen {{ip}}:7200
//
// and so advertises an address its peers can dial.
//
// LAUNCH_RESOLVE=name[:port],... makes it first wait (up to two minutes)
// until each name resolves: a Kubernetes StatefulSet pod's own DNS name
// appears shortly after the pod starts, and a coordinator listens on the
// address its --raft-addr names.
//
// It is a module of its own (standard library only), outside the
// ringmaster module's ./..., built by `make images`.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: launch PROGRAM [ARG...] ({{ip}} and {{hostname}} are replaced)")
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	var ip string
	if strings.Contains(strings.Join(append(os.Environ(), args...), "\x00"), "{{ip}}") {
		if ip, err = ownIP(host); err != nil {
			return err
		}
	}
	r := strings.NewReplacer("{{hostname}}", host, "{{ip}}", ip)
	for i := range args {
		args[i] = r.Replace(args[i])
	}
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, "RINGMASTER_") {
			env[i] = r.Replace(kv)
		}
	}
	if err := waitResolve(os.Getenv("LAUNCH_RESOLVE"), 2*time.Minute); err != nil {
		return err
	}
	prog, err := exec.LookPath(args[0])
	if err != nil {
		return err
	}
	return syscall.Exec(prog, args, env)
}

// ownIP returns the first IPv4 address of an up, non-loopback interface,
// else what the host name resolves to (/etc/hosts in a container).
func ownIP(host string) (string, error) {
	ifs, err := net.Interfaces()
	if err == nil {
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
					return n.IP.String(), nil
				}
			}
		}
	}
	ips, err := net.LookupHost(host)
	if err != nil {
		return "", fmt.Errorf("no address for this container: %w", err)
	}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() {
			return s, nil
		}
	}
	return "", fmt.Errorf("no non-loopback address for %s", host)
}

// waitResolve polls until every name in the comma-separated list (host or
// host:port) resolves, or fails after timeout.
func waitResolve(list string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if h, _, err := net.SplitHostPort(name); err == nil {
			name = h
		}
		for {
			_, err := net.LookupHost(name)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("LAUNCH_RESOLVE: %w", err)
			}
			time.Sleep(time.Second)
		}
	}
	return nil
}
