// Package netcluster builds a cluster of "hosts" on one Linux machine for
// multi-host tests: each host is a network namespace (ip netns) with its own
// address on a private bridge, reached from the test through the bridge, so
// processes on different hosts talk over a real network that a test can cut
// (Partition drops a host's veth). Where namespaces cannot be made (not
// root, no ip tool) it falls back to loopback addresses 127.0.<n>.<i>, one
// per host, and says so (Net.Fallback); partitions then are unavailable.
//
// Everything it creates is named with the prefix "mh<pid>": Close removes
// it, and New first sweeps what earlier runs left behind when their process
// is gone (a test killed mid-way). Addresses are in 10.99.<n>.0/24, made by
// the harness itself: traffic only ever goes to them and to loopback.
package netcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// EnvLoopback, when set, makes New use the loopback fallback even where
// namespaces work (to test the fallback).
const EnvLoopback = "MERIDIAN_NETCLUSTER_LOOPBACK"

// ErrNoPartition is returned by Partition in the loopback fallback.
var ErrNoPartition = errors.New("netcluster: partitions need network namespaces")

// Net is one private network of hosts.
type Net struct {
	// Prefix names every namespace and link of this Net.
	Prefix string
	// Fallback is true when hosts are loopback addresses, not namespaces.
	Fallback bool
	// Reason says why namespaces were not used (empty when they are).
	Reason string

	subnet  int
	bridge  string
	hosts   []*Host
	created []string // namespaces, deleted by Close
	links   []string // root-namespace links, deleted by Close
}

// Host is one machine of the Net.
type Host struct {
	Name string
	// IP is the host's address, as the test and other hosts reach it.
	IP string
	// NS is the network namespace ("" in the fallback).
	NS   string
	veth string // root-namespace end of its veth pair
	net  *Net
}

// stalePrefix matches names made by some run: mh<pid>...
var stalePrefix = regexp.MustCompile(`^mh([0-9]+)`)

// New makes an empty Net. It tries namespaces and falls back to loopback.
func New(ctx context.Context) (*Net, error) {
	pid := os.Getpid()
	n := &Net{Prefix: "mh" + strconv.Itoa(pid), subnet: 1 + pid%250}
	Sweep(ctx)
	if os.Getenv(EnvLoopback) != "" {
		n.Fallback, n.Reason = true, EnvLoopback+" is set"
		return n, nil
	}
	if err := n.makeBridge(ctx); err != nil {
		n.Close()
		n.Fallback, n.Reason = true, err.Error()
		n.created, n.links = nil, nil
		n.subnet = 1 + pid%250
	}
	return n, nil
}

func (n *Net) makeBridge(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("not root: ip netns needs CAP_SYS_ADMIN")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip tool (iproute2)")
	}
	n.bridge = n.Prefix + "b"
	if err := run(ctx, "ip", "link", "add", n.bridge, "type", "bridge"); err != nil {
		return err
	}
	n.links = append(n.links, n.bridge)
	if err := run(ctx, "ip", "addr", "add", fmt.Sprintf("10.99.%d.1/24", n.subnet), "dev", n.bridge); err != nil {
		return err
	}
	if err := run(ctx, "ip", "link", "set", n.bridge, "up"); err != nil {
		return err
	}
	// Probe that a namespace can be made here.
	probe := n.Prefix + "-probe"
	if err := run(ctx, "ip", "netns", "add", probe); err != nil {
		return err
	}
	run(ctx, "ip", "netns", "del", probe)
	return nil
}

// AddHost adds host name with the address index i (2..254).
func (n *Net) AddHost(ctx context.Context, name string, i int) (*Host, error) {
	h := &Host{Name: name, net: n}
	n.hosts = append(n.hosts, h)
	if n.Fallback {
		h.IP = fmt.Sprintf("127.0.%d.%d", n.subnet, i)
		return h, nil
	}
	h.IP = fmt.Sprintf("10.99.%d.%d", n.subnet, i)
	h.NS = n.Prefix + "-" + name
	h.veth = fmt.Sprintf("%sv%d", n.Prefix, i)
	peer := h.veth + "p"
	steps := [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", h.NS},
		{"ip", "link", "set", h.veth, "master", n.bridge},
		{"ip", "link", "set", h.veth, "up"},
		{"ip", "-n", h.NS, "link", "set", peer, "name", "eth0"},
		{"ip", "-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
	}
	for i, s := range steps {
		if err := run(ctx, s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("host %s: %w", name, err)
		}
		switch i {
		case 0:
			n.created = append(n.created, h.NS)
		case 1:
			n.links = append(n.links, h.veth)
		}
	}
	return h, nil
}

// Command returns a command running on h (in its namespace).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if h.NS == "" {
		cmd = exec.CommandContext(ctx, name, args...)
	} else {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	}
	// Own process group: a kill reaches the program, not only ip.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// LocalIP is the address for listeners only the host itself may reach
// (an admin API): loopback in its namespace, its own address otherwise.
func (h *Host) LocalIP() string {
	if h.NS != "" {
		return "127.0.0.1"
	}
	return h.IP
}

// Addr joins h's address and port.
func (h *Host) Addr(port int) string { return net.JoinHostPort(h.IP, strconv.Itoa(port)) }

// Partition cuts h off the network (its veth goes down); Heal restores it.
func (h *Host) Partition(ctx context.Context) error {
	if h.NS == "" {
		return ErrNoPartition
	}
	return run(ctx, "ip", "link", "set", h.veth, "down")
}

// Heal reconnects a partitioned host.
func (h *Host) Heal(ctx context.Context) error {
	if h.NS == "" {
		return ErrNoPartition
	}
	return run(ctx, "ip", "link", "set", h.veth, "up")
}

// Close removes every namespace and link of n.
func (n *Net) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, ns := range n.created {
		// Processes left in it would keep it: kill them first.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(n.links) - 1; i >= 0; i-- {
		run(ctx, "ip", "link", "del", n.links[i]) // a veth goes with its namespace
	}
	n.created, n.links = nil, nil
	return errors.Join(errs...)
}

// Sweep removes namespaces and links named by runs whose process is gone.
func Sweep(ctx context.Context) {
	dead := func(name string) bool {
		m := stalePrefix.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		return pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && dead(f[0]) {
				if pids, err := exec.CommandContext(ctx, "ip", "netns", "pids", f[0]).Output(); err == nil {
					for _, p := range strings.Fields(string(pids)) {
						if pid, err := strconv.Atoi(p); err == nil {
							syscall.Kill(pid, syscall.SIGKILL)
						}
					}
				}
				run(ctx, "ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.SplitN(line, ": ", 3)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(f[1], "@")
			if dead(name) {
				run(ctx, "ip", "link", "del", name)
			}
		}
	}
}

func run(ctx context.Context, name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
