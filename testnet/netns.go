package testnet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"strings"
)

// Ports of a node in a namespace of its own: every node has its own address, so they
// can all use the default ports.
const (
	nsAPIPort  = 7700
	nsMeshPort = 7701
)

// ip runs iproute2's ip with args.
func ip(ctx context.Context, args ...string) error {
	path, err := exec.LookPath("ip")
	if err != nil {
		return errors.New("network namespaces need iproute2's ip: install it (Debian: apt-get install iproute2)")
	}
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// checkNetNS says why this machine cannot make network namespaces, or nil.
func checkNetNS() error {
	if os.Geteuid() != 0 {
		return errors.New("--netns needs root: network namespaces, veth pairs and the bridge are the machine's (run as root, or leave out --netns)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("--netns needs iproute2's ip on PATH (Debian: apt-get install iproute2), or leave out --netns")
	}
	return nil
}

// netnsNames gives the bridge, and each node's namespace and veth, names that are
// unique to the testnet's directory; interface names have at most 15 bytes.
func netnsNames(name, dir string, nodes int) (bridge string, namespaces, veths []string) {
	tag := fmt.Sprintf("%08x", dirHash(dir))
	bridge = "qtn" + tag
	for i := 1; i <= nodes; i++ {
		namespaces = append(namespaces, fmt.Sprintf("qnet-%s-%d", name, i))
		veths = append(veths, fmt.Sprintf("qt%s-%d", tag, i))
	}
	return bridge, namespaces, veths
}

// freeSubnet picks the first 10.77.X.0/24 that no interface of the machine has an
// address in.
func freeSubnet() (*net.IPNet, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	used := map[byte]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if v4 := n.IP.To4(); v4 != nil && v4[0] == 10 && v4[1] == 77 {
				used[v4[2]] = true
			}
		}
	}
	for x := 0; x < 256; x++ {
		if !used[byte(x)] {
			return &net.IPNet{IP: net.IPv4(10, 77, byte(x), 0).To4(), Mask: net.CIDRMask(24, 32)}, nil
		}
	}
	return nil, errors.New("no free subnet in 10.77.0.0/16 for the testnet's bridge")
}

// dirHash tags what a testnet makes on the machine (interfaces, tables, group IDs)
// with its directory, so that two testnets never share them.
func dirHash(dir string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(dir))
	return h.Sum32()
}

// hostIn is the address with last byte i in a /24.
func hostIn(subnet *net.IPNet, i int) string {
	v4 := subnet.IP.To4()
	return net.IPv4(v4[0], v4[1], v4[2], byte(i)).String()
}

// setupNetNS makes the bridge and every node's namespace with its veth pair, address
// and loopback.
func setupNetNS(ctx context.Context, st *State) error {
	_, subnet, err := net.ParseCIDR(st.NetNS.Subnet)
	if err != nil {
		return fmt.Errorf("netns: subnet: %w", err)
	}
	br := st.NetNS.Bridge
	steps := [][]string{
		{"link", "add", br, "type", "bridge"},
		{"addr", "add", hostIn(subnet, 254) + "/24", "dev", br},
		{"link", "set", br, "up"},
	}
	for _, n := range st.Nodes {
		if _, err := os.Stat("/run/netns/" + n.Namespace); err == nil {
			return fmt.Errorf("netns: namespace %s exists already (another testnet named %q?): take that one down, or choose another --name", n.Namespace, st.Name)
		}
		host, _, _ := net.SplitHostPort(n.API)
		steps = append(steps,
			[]string{"netns", "add", n.Namespace},
			[]string{"link", "add", n.Veth, "type", "veth", "peer", "name", "eth0", "netns", n.Namespace},
			[]string{"link", "set", n.Veth, "master", br, "up"},
			[]string{"-n", n.Namespace, "addr", "add", host + "/24", "dev", "eth0"},
			[]string{"-n", n.Namespace, "link", "set", "eth0", "up"},
			[]string{"-n", n.Namespace, "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return fmt.Errorf("netns: %w", err)
		}
	}
	return nil
}

// teardownNetNS removes the veth pairs, the namespaces and the bridge; what is already
// gone is no error. The veth pairs go first and explicitly: a namespace outlives its
// name for as long as anything still refers to it (a socket the kernel is closing), and
// its end of the pair with it.
func teardownNetNS(ctx context.Context, st *State) error {
	var errs []error
	for _, n := range st.Nodes {
		if _, err := net.InterfaceByName(n.Veth); err == nil {
			if err := ip(ctx, "link", "del", n.Veth); err != nil {
				errs = append(errs, err)
			}
		}
		if _, err := os.Stat("/run/netns/" + n.Namespace); err != nil {
			continue
		}
		if err := ip(ctx, "netns", "del", n.Namespace); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := net.InterfaceByName(st.NetNS.Bridge); err == nil {
		if err := ip(ctx, "link", "del", st.NetNS.Bridge); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
