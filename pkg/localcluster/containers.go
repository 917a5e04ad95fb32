package localcluster

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// In container mode (Config.Containers) every coordinator and worker runs
// in its own container on a private Docker network of its own, so each has
// its own network stack, host name and IP address, as on separate machines:
// faults can cut a container off the network (Disconnect) besides killing
// and stopping it. The containers run an empty image; the binaries
// (static: Build makes them so) and the cluster directory are bind-mounted
// at their host paths, so arguments, logs, data dirs and models are the
// same as in process mode and the host reads them directly. The host
// reaches the containers through the network's bridge.
//
// A process is `docker start -a NAME`: its output is the container's, it
// exits when the container stops, and Signal sends the signal to the
// container (docker kill -s), never to the docker client.

// ContainerImage is the empty image the containers run (made with docker
// import on first use: a /tmp and nothing else).
const ContainerImage = "ringmaster-localcluster:scratch"

// ownerLabel marks the containers and networks a cluster creates, with the
// PID of the process that started it: Start removes those of owners that
// have exited (a parent killed by SIGKILL cannot remove its own).
const ownerLabel = "ringmaster.localcluster.owner"

// dockerNet is a cluster's private network.
type dockerNet struct {
	name   string
	prefix netip.Prefix
	next   netip.Addr // the next address to hand out
}

// docker runs a docker CLI command and returns its trimmed output.
func docker(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args[:min(2, len(args))], " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// ContainersAvailable reports whether a Docker engine answers here.
func ContainersAvailable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := docker(ctx, nil, "info", "--format", "{{.ServerVersion}}")
	return err == nil
}

// newDockerNet removes what exited owners left behind, makes sure the
// image exists, and creates an internal network (no route off the host)
// for this cluster.
func newDockerNet(ctx context.Context) (*dockerNet, error) {
	removeOrphans(ctx)
	if _, err := docker(ctx, nil, "image", "inspect", "--format", "{{.Id}}", ContainerImage); err != nil {
		img, err := emptyImage()
		if err != nil {
			return nil, err
		}
		if _, err := docker(ctx, img, "import", "-", ContainerImage); err != nil {
			return nil, fmt.Errorf("make image %s: %w", ContainerImage, err)
		}
	}
	name := fmt.Sprintf("ringmaster-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	// Fixed addresses (a restarted container keeps its own, as a machine
	// does) need a subnet named at creation: take the first /24 of
	// 10.213.0.0/16 that no other network on the host uses (Docker refuses
	// overlapping ones).
	var last error
	for i := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(i), 0}), 24)
		_, err := docker(ctx, nil, "network", "create", "--internal", "--subnet", p.String(),
			"--label", ownerLabel+"="+strconv.Itoa(os.Getpid()), name)
		if err == nil {
			// .1 is the bridge (the host's address on the network).
			return &dockerNet{name: name, prefix: p, next: p.Addr().Next().Next()}, nil
		}
		last = err
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	return nil, fmt.Errorf("create network %s: %w", name, last)
}

// addr hands out the next address of the network.
func (n *dockerNet) addr() (string, error) {
	a := n.next
	if !n.prefix.Contains(a) {
		return "", fmt.Errorf("network %s (%s) has no address left", n.name, n.prefix)
	}
	n.next = a.Next()
	return a.String(), nil
}

// emptyImage is a tar holding only /tmp (mode 1777), for docker import.
func emptyImage() ([]byte, error) {
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// removeOrphans deletes the containers and networks of owners that are no
// longer running.
func removeOrphans(ctx context.Context) {
	gone := func(pid string) bool {
		n, err := strconv.Atoi(pid)
		return err != nil || errors.Is(syscall.Kill(n, 0), syscall.ESRCH)
	}
	format := "{{.Names}} {{.Label \"" + ownerLabel + "\"}}"
	if out, err := docker(ctx, nil, "ps", "-a", "--filter", "label="+ownerLabel, "--format", format); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if name, pid, ok := strings.Cut(line, " "); ok && gone(pid) {
				_, _ = docker(ctx, nil, "rm", "-f", name)
			}
		}
	}
	format = "{{.Name}} {{.Label \"" + ownerLabel + "\"}}"
	if out, err := docker(ctx, nil, "network", "ls", "--filter", "label="+ownerLabel, "--format", format); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if name, pid, ok := strings.Cut(line, " "); ok && gone(pid) {
				_, _ = docker(ctx, nil, "network", "rm", name)
			}
		}
	}
}

// createContainer creates p's container (not started) on the network at
// p.ip, running p.Args with the binaries and the cluster directory mounted.
func (c *Cluster) createContainer(ctx context.Context, p *Proc) error {
	args := []string{"create", "--name", p.container, "--hostname", p.Name,
		"--network", c.net.name, "--ip", p.ip, "--label", ownerLabel + "=" + strconv.Itoa(os.Getpid()),
		"--user", fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		"-v", c.cfg.Dir + ":" + c.cfg.Dir, "-v", c.cfg.BinDir + ":" + c.cfg.BinDir + ":ro"}
	for _, e := range c.extraEnv(p) {
		args = append(args, "-e", e)
	}
	args = append(append(args, ContainerImage), p.Args...)
	if _, err := docker(ctx, nil, args...); err != nil {
		return fmt.Errorf("local cluster: container for %s: %w", p.Name, err)
	}
	return nil
}

// Disconnect cuts p's container off the cluster's network: every
// connection to and from it stops getting through, as when a machine's
// link goes down (its process keeps running). Container mode only.
func (c *Cluster) Disconnect(p *Proc) error {
	if c.net == nil {
		return errors.New("local cluster: Disconnect needs container mode (Config.Containers)")
	}
	_, err := docker(context.Background(), nil, "network", "disconnect", "--force", c.net.name, p.container)
	return err
}

// Reconnect puts p's container back on the network at its address.
func (c *Cluster) Reconnect(p *Proc) error {
	if c.net == nil {
		return errors.New("local cluster: Reconnect needs container mode (Config.Containers)")
	}
	_, err := docker(context.Background(), nil, "network", "connect", "--ip", p.ip, c.net.name, p.container)
	return err
}

// removeContainers deletes the cluster's containers and network.
func (c *Cluster) removeContainers() {
	if c.net == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names := []string{"rm", "-f"}
	for _, p := range c.Procs() {
		if p.container != "" {
			names = append(names, p.container)
		}
	}
	_, _ = docker(ctx, nil, names...)
	_, _ = docker(ctx, nil, "network", "rm", c.net.name)
}
