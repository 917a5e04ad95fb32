// Package netlab builds private networks of Linux network namespaces for
// partition tests: a bridge in a hub namespace, one namespace per node
// (10.77.S.i+1 on its eth0) and a veth into the caller's own namespace
// (10.77.S.254), so the caller reaches every node while Cut makes two nodes
// unreachable from each other. The bridge sits in its own namespace so the
// host's firewall (Docker's FORWARD DROP) never sees the bridged frames.
// It needs root and ip(8); New reports ErrUnsupported otherwise.
package netlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrUnsupported: this process cannot make network namespaces.
var ErrUnsupported = errors.New("netlab: network namespaces unavailable (need root and ip(8))")

// Lab is one private network.
type Lab struct {
	prefix string
	subnet int
	hub    string
	nodes  []string // namespace per node
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// New builds a lab for n nodes on 10.77.subnet.0/24. Names start with
// prefix (keep it short: interface names have 15 bytes); prefix and subnet
// must be unique among labs alive at once on the machine (test packages
// run in parallel). Close removes everything.
func New(prefix string, subnet, n int) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, ErrUnsupported
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, ErrUnsupported
	}
	l := &Lab{prefix: prefix, subnet: subnet, hub: prefix + "h"}
	if err := ip("netns", "add", l.hub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	if err := l.build(n); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) build(n int) error {
	steps := [][]string{
		{"-n", l.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", l.hub, "link", "set", "br0", "up"},
	}
	// veth: the outer end on the bridge in the hub, the inner end in the
	// node's namespace (made under a unique name, as ours may have an eth0,
	// and renamed inside) or in ours.
	link := func(outer, inner, ns, addr string) {
		steps = append(steps,
			[]string{"link", "add", outer, "type", "veth", "peer", "name", inner},
			[]string{"link", "set", outer, "netns", l.hub},
			[]string{"-n", l.hub, "link", "set", outer, "master", "br0", "up"})
		if ns == "" {
			steps = append(steps,
				[]string{"addr", "add", addr + "/24", "dev", inner},
				[]string{"link", "set", inner, "up"})
			return
		}
		steps = append(steps,
			[]string{"link", "set", inner, "netns", ns},
			[]string{"-n", ns, "link", "set", inner, "name", "eth0"},
			[]string{"-n", ns, "addr", "add", addr + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", ns, "link", "set", "lo", "up"})
	}
	link(l.prefix+"r0", l.prefix+"r1", "", l.HostAddr())
	for i := range n {
		ns := fmt.Sprintf("%sn%d", l.prefix, i)
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		l.nodes = append(l.nodes, ns)
		link(fmt.Sprintf("%sv%d", l.prefix, i), fmt.Sprintf("%se%d", l.prefix, i), ns, l.Addr(i))
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// Close removes the lab's namespaces and links.
func (l *Lab) Close() {
	// Our end goes first and synchronously: a namespace's devices are freed
	// lazily, and the next lab may reuse the name.
	_ = ip("link", "del", l.prefix+"r1")
	for _, ns := range l.nodes {
		_ = ip("netns", "del", ns)
	}
	_ = ip("netns", "del", l.hub)
}

// Addr is node i's address.
func (l *Lab) Addr(i int) string { return fmt.Sprintf("10.77.%d.%d", l.subnet, i+1) }

// HostAddr is the caller's own address on the lab network.
func (l *Lab) HostAddr() string { return fmt.Sprintf("10.77.%d.254", l.subnet) }

// Namespace is node i's network namespace.
func (l *Lab) Namespace(i int) string { return l.nodes[i] }

// Prefix is the command prefix that runs a program in node i's namespace.
func (l *Lab) Prefix(i int) []string { return []string{"ip", "netns", "exec", l.nodes[i]} }

// Cut makes nodes i and j unreachable from each other: blackhole routes in
// both namespaces drop every packet, as a failed link would, and nobody is
// told (no reset, no ICMP).
func (l *Lab) Cut(i, j int) error {
	if err := ip("-n", l.nodes[i], "route", "add", "blackhole", l.Addr(j)+"/32"); err != nil {
		return err
	}
	return ip("-n", l.nodes[j], "route", "add", "blackhole", l.Addr(i)+"/32")
}

// Heal undoes Cut(i, j).
func (l *Lab) Heal(i, j int) error {
	if err := ip("-n", l.nodes[i], "route", "del", "blackhole", l.Addr(j)+"/32"); err != nil {
		return err
	}
	return ip("-n", l.nodes[j], "route", "del", "blackhole", l.Addr(i)+"/32")
}
