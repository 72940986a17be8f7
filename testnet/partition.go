package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// How a partition cuts traffic.
//
// With --netns every node has an address of its own, and a partition is a blackhole
// route in each node's namespace for the address of every node on the other side:
// packets to the other side are dropped where they are sent, in both directions, for
// connections that exist (routes are looked up again when the table changes) and new
// ones alike. Only iproute2 is needed.
//
// Without --netns every node listens on 127.0.0.1, and the client end of a connection
// has a random port, so ports alone cannot say which node sent a packet. Each agent
// therefore runs with a group ID of its own (Node.GID), and an nftables table in the
// output hook (every packet on the loopback is sent by a local socket) drops:
//   - every packet that a node of one side sends to the mesh port of a node of the
//     other (`meta skgid` names the sender), after recording the connection's two
//     ports in a set;
//   - every packet sent back on a connection in that set (from the mesh port to the
//     client's port), whoever sends it.
// A connection that exists when the partition starts is recorded with the next packet
// its client sends (an ACK at the latest), so both directions of it stop too. Nothing
// depends on connection tracking, which would have picked up connections made before
// it was first used with their directions guessed. The operator's API traffic and the
// depots' traffic pass: only the mesh is cut.

// nftTable is the nftables table (family inet) of the testnet in dir.
func nftTable(name, dir string) string {
	return fmt.Sprintf("qnet_testnet_%s_%08x", strings.ReplaceAll(name, "-", "_"), dirHash(dir))
}

// nftRuleset renders the table that cuts the mesh connections between two sides of a
// loopback testnet. It replaces an older table of the same name in the same
// transaction, so changing a partition never lets packets through in between.
func nftRuleset(table string, sides [2][]Node) (string, error) {
	var gids, ports [2][]string
	for s, nodes := range sides {
		if len(nodes) == 0 {
			return "", fmt.Errorf("partition: side %d has no node", s+1)
		}
		for _, n := range nodes {
			if n.GID == 0 {
				return "", fmt.Errorf("partition: %s runs without a group ID of its own (the testnet was started without root), so its connections on the loopback cannot be told apart: take the testnet down and up again as root, or use --netns", n.Name)
			}
			port, err := splitPort(n.Mesh)
			if err != nil {
				return "", fmt.Errorf("partition: %s: %w", n.Name, err)
			}
			gids[s] = append(gids[s], strconv.FormatUint(uint64(n.GID), 10))
			ports[s] = append(ports[s], strconv.Itoa(port))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", table, table, table)
	// Entries outlive a connection's last packet long enough for its other end to give
	// up retransmitting.
	b.WriteString("  set cut {\n    type inet_service . inet_service\n    flags dynamic,timeout\n    timeout 5m\n  }\n")
	b.WriteString("  chain output {\n    type filter hook output priority 0; policy accept;\n")
	for s := range sides {
		fmt.Fprintf(&b, "    oifname \"lo\" meta skgid { %s } tcp dport { %s } update @cut { tcp sport . tcp dport } drop\n",
			strings.Join(gids[s], ", "), strings.Join(ports[1-s], ", "))
	}
	b.WriteString("    oifname \"lo\" tcp dport . tcp sport @cut drop\n")
	b.WriteString("  }\n}\n")
	return b.String(), nil
}

// nftDelete is the script that removes a table whether or not it exists.
func nftDelete(table string) string {
	return fmt.Sprintf("table inet %s\ndelete table inet %s\n", table, table)
}

// runNft runs an nft script.
func runNft(ctx context.Context, script string) error {
	path, err := exec.LookPath("nft")
	if err != nil {
		return errors.New("a partition without --netns needs nft (nftables) to drop packets on the loopback: install it (Debian: apt-get install nftables), or use a testnet with --netns")
	}
	if os.Geteuid() != 0 {
		return errors.New("a partition needs root: nftables rules and network namespaces are the machine's")
	}
	cmd := exec.CommandContext(ctx, path, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f -: %w: %s\nscript:\n%s", err, strings.TrimSpace(string(out)), script)
	}
	return nil
}

// blackholes lists, per node namespace, the addresses a netns partition routes into a
// blackhole: every address of the other side.
func blackholes(sides [2][]Node) (map[string][]string, error) {
	out := map[string][]string{}
	for s, nodes := range sides {
		for _, n := range nodes {
			for _, o := range sides[1-s] {
				host, _, err := net.SplitHostPort(o.Mesh)
				if err != nil {
					return nil, fmt.Errorf("partition: %s: %w", o.Name, err)
				}
				out[n.Namespace] = append(out[n.Namespace], host+"/32")
			}
		}
	}
	return out, nil
}

// applyPartition cuts the testnet between the two sides (node indexes), replacing any
// partition in place so that nothing both the old and the new one cut passes in
// between: new routes go in before old ones go, and nftables swaps tables at once.
func applyPartition(ctx context.Context, st *State, dir string, groups [2][]int) error {
	sides := nodesOf(st, groups)
	if st.NetNS == nil {
		script, err := nftRuleset(nftTable(st.Name, dir), sides)
		if err != nil {
			return err
		}
		return runNft(ctx, script)
	}
	routes, err := blackholes(sides)
	if err != nil {
		return err
	}
	old := map[string][]string{}
	if st.Partition != nil {
		if old, err = blackholes(nodesOf(st, st.Partition.Groups)); err != nil {
			return err
		}
	}
	for ns, addrs := range routes {
		for _, a := range addrs {
			if err := ip(ctx, "-n", ns, "route", "replace", "blackhole", a); err != nil {
				return fmt.Errorf("partition: %w", err)
			}
		}
	}
	for ns, addrs := range old {
		for _, a := range addrs {
			if !slices.Contains(routes[ns], a) {
				if err := ip(ctx, "-n", ns, "route", "del", "blackhole", a); err != nil {
					return fmt.Errorf("partition: %w", err)
				}
			}
		}
	}
	return nil
}

// nodesOf returns the nodes of two sides given by index.
func nodesOf(st *State, groups [2][]int) [2][]Node {
	var sides [2][]Node
	for s, g := range groups {
		for _, idx := range g {
			sides[s] = append(sides[s], st.Nodes[idx-1])
		}
	}
	return sides
}

// healPartition removes whatever cut the testnet's traffic.
func healPartition(ctx context.Context, st *State, dir string) error {
	if st.NetNS == nil {
		if _, err := exec.LookPath("nft"); (err != nil || os.Geteuid() != 0) && st.Partition == nil {
			return nil // no table of ours can exist
		}
		return runNft(ctx, nftDelete(nftTable(st.Name, dir)))
	}
	var errs []error
	for _, n := range st.Nodes {
		if err := ip(ctx, "-n", n.Namespace, "route", "flush", "type", "blackhole"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
