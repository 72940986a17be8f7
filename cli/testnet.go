package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/testnet"
)

func (a *app) testnetCmd() *cobra.Command {
	var dir, name string
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Run a local network of several nodes on this machine",
		Long: `Run a network of N real qnet agent processes on this machine, to try a deployment
before it goes live or to see how the network behaves when nodes die or the network
splits.

qnet testnet up creates the network (qnet init for node 1, a join token for each other
node), starts every agent in the background with its own data dir and log file, waits
until every node is a member and alive, and adds a context named testnet-NAME to your
context file. The testnet's directory (default ~/.qnet/testnets/NAME) holds its state,
the nodes' data dirs and logs, and a context file of its own with a context per node
(node1, node2, ...), to talk to each node directly.

Nodes listen on 127.0.0.1 with ports of their own, or with --netns (as root) each in a
network namespace of its own with its own address on a bridge. kill, restart,
partition and heal act on nodes named by index (3), name (node3) or ID.`,
		Example: `  qnet testnet up --nodes 5
  qnet --context testnet-local get nodes
  qnet testnet kill 2
  qnet testnet partition 1,2 / 3,4,5
  qnet testnet heal
  qnet testnet restart 2
  qnet testnet down`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&dir, "dir", "", "the testnet's directory (default ~/.qnet/testnets/NAME)")
	pf.StringVar(&name, "name", testnet.DefaultName, "the testnet's name")
	_ = cmd.MarkPersistentFlagDirname("dir")

	// where is the testnet's directory, from --dir or --name.
	where := func() (string, error) {
		if dir != "" {
			return dir, nil
		}
		if err := testnet.ValidateName(name); err != nil {
			return "", usageErr("--name: %v", err)
		}
		return testnet.DefaultDir(name)
	}
	open := func(exclusive bool) (*testnet.Testnet, error) {
		d, err := where()
		if err != nil {
			return nil, err
		}
		return testnet.Open(d, exclusive)
	}

	cmd.AddCommand(a.testnetUpCmd(&dir, &name), a.testnetStatusCmd(open))
	cmd.AddCommand(a.testnetKillCmd(open), a.testnetRestartCmd(open), a.testnetPartitionCmd(open), a.testnetHealCmd(open), a.testnetDownCmd(open))
	return cmd
}

// openFunc opens the testnet the flags name, exclusively for commands that change it.
type openFunc func(exclusive bool) (*testnet.Testnet, error)

func (a *app) testnetUpCmd(dir, name *string) *cobra.Command {
	var (
		nodes   int
		netns   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "up --nodes N [--dir D] [--name NAME] [--netns]",
		Short: "Create and start a testnet",
		Long: `Create a network of --nodes nodes and start their agents in the background; return
once every node is a member and alive. The context testnet-NAME (node 1's) is added to
your context file and made current.

With --netns every node runs in a network namespace of its own (qnet-NAME-<i>) with an
address of 10.77.X.0/24 on a bridge; this needs root and iproute2's ip.`,
		Example: `  qnet testnet up --nodes 5
  qnet testnet up --nodes 3 --name lab --netns
  qnet testnet up --nodes 3 --dir /tmp/tn`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nodes < 1 || nodes > testnet.MaxNodes {
				return usageErr("--nodes %d: want 1 to %d", nodes, testnet.MaxNodes)
			}
			if err := testnet.ValidateName(*name); err != nil {
				return usageErr("--name: %v", err)
			}
			t, err := testnet.Up(cmd.Context(), testnet.Options{
				Name: *name, Dir: *dir, Nodes: nodes, NetNS: netns, UserConfig: a.configPath(),
				Timeout: timeout, Progress: a.stderr,
			})
			if err != nil {
				return err
			}
			defer t.Close()
			st := t.State
			fmt.Fprintf(a.stdout, "Testnet %q is up: %d node(s) of network %q in %s\n\n", st.Name, len(st.Nodes), st.Network, t.Dir)
			tab := newTable(a.stdout)
			fmt.Fprintln(tab, "NODE\tNAME\tID\tPID\tAPI\tMESH")
			for _, n := range st.Nodes {
				fmt.Fprintf(tab, "%d\t%s\t%s\t%d\t%s\t%s\n", n.Index, n.Name, n.ID, n.PID, serverURL(n.API), n.Mesh)
			}
			if err := tab.Flush(); err != nil {
				return err
			}
			ctxName := testnet.ContextName(st.Name)
			last := st.Nodes[len(st.Nodes)-1].Name
			fmt.Fprintf(a.stdout, `
Context %s (node1) is current in %s:
  qnet --context %s get nodes
  qnet --context %s apply -f web.yaml --wait
Through any one node (contexts node1..%s):
  qnet --config %s/%s --context %s get depots
Logs: %s/<node>/agent.log
Then: qnet testnet status | kill NODE | restart NODE | partition 1,2 / 3 | heal | down%s
`, ctxName, a.configPath(), ctxName, ctxName, last, t.Dir, testnet.ConfigFile, last, t.Dir, dirFlag(*dir, st.Name))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 0, "how many nodes (required)")
	f.BoolVar(&netns, "netns", false, "run every node in a network namespace of its own (root, iproute2)")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "how long the nodes may take to start")
	_ = cmd.MarkFlagRequired("nodes")
	return cmd
}

// dirFlag is what later commands need to find a testnet that is not the default one.
func dirFlag(dir, name string) string {
	switch {
	case dir != "":
		return " --dir " + dir
	case name != testnet.DefaultName:
		return " --name " + name
	}
	return ""
}

func (a *app) testnetStatusCmd(open openFunc) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the testnet's nodes: processes, addresses and roles",
		Long: `Show every node of the testnet: its agent's process, its addresses and, from its
API, whether it is a validator, the leader it knows, its chain height and its side of
a partition.`,
		Example: `  qnet testnet status
  qnet testnet status -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := open(false)
			if err != nil {
				return err
			}
			defer t.Close()
			sts := t.Status(cmd.Context())
			if output != formatTable {
				return writeDoc(a.stdout, output, sts)
			}
			names := map[string]string{}
			for _, n := range t.State.Nodes {
				if n.ID != "" {
					names[n.ID] = n.Name
				}
			}
			tab := newTable(a.stdout)
			fmt.Fprintln(tab, "NODE\tNAME\tID\tPID\tPROCESS\tAPI\tMESH\tDNS\tROLE\tLEADER\tHEIGHT\tSIDE")
			for _, s := range sts {
				process, role, leader, height, side := "exited", "-", "-", "-", "-"
				if s.Running {
					process = "running"
					role = "unreachable"
				}
				if s.Reachable {
					role = "follower"
					if s.Validator {
						role = "validator"
					}
					if s.IsLeader {
						role = "leader"
					}
					leader = "none"
					if s.Leader != "" {
						leader = orElse(names[s.Leader], s.Leader)
					}
					height = strconv.FormatUint(s.Height, 10)
				}
				if s.Side > 0 {
					side = strconv.Itoa(s.Side)
				}
				id := s.ID
				if len(id) > 16 {
					id = id[:16]
				}
				fmt.Fprintf(tab, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Index, s.Name, orDash(id), s.PID, process, s.API, s.Mesh, orDash(s.DNS), role, leader, height, side)
			}
			if err := tab.Flush(); err != nil {
				return err
			}
			if p := t.State.Partition; p != nil {
				fmt.Fprintf(a.stdout, "\nPartitioned: %s / %s (qnet testnet heal removes it)\n", joinInts(p.Groups[0]), joinInts(p.Groups[1]))
			}
			return nil
		},
	}
	outputFlag(cmd, &output, formatTable, formatJSON, formatYAML)
	return cmd
}

// orElse is s, or def when s is empty.
func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func (a *app) testnetKillCmd(open openFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "kill NODE",
		Short: "Kill a node: its agent and all its depots, with SIGKILL",
		Long: `Kill a node as a machine that loses power dies: SIGKILL to its agent and to every
process of its depots (their shims, the processes in the node's cgroups, and whatever
runs in the depots' sessions). The rest of the network sees the node go and places its
replicas elsewhere. qnet testnet restart NODE starts it again.`,
		Example: `  qnet testnet kill 3
  qnet testnet kill node3`,
		Args: exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := open(true)
			if err != nil {
				return err
			}
			defer t.Close()
			n, killed, err := t.Kill(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s killed: %d process(es) %v (agent pid %d)\n", n.Name, len(killed), killed, n.PID)
			return nil
		},
	}
}

func (a *app) testnetRestartCmd(open openFunc) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart NODE",
		Short: "Start a killed node's agent again on its data dir",
		Long: `Start the agent of a node that is not running again, on its data dir and at its
addresses, and wait until it answers and knows the ordering leader.`,
		Example: `  qnet testnet restart 3`,
		Args:    exactArgs("NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := open(true)
			if err != nil {
				return err
			}
			defer t.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			n, err := t.Restart(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s restarted (pid %d), API at %s\n", n.Name, n.PID, serverURL(n.API))
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Second, "how long the node may take to start")
	return cmd
}

func (a *app) testnetPartitionCmd(open openFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "partition GROUP [/ GROUP]",
		Short: "Cut the network between two groups of nodes",
		Long: `Cut the traffic between the nodes of two groups, in both directions, for the
connections that exist and new ones: with --netns by blackhole routes in the nodes'
namespaces, else by nftables rules on the loopback (root and nft needed). A single
group is cut from every other node. A new partition replaces the one in place; qnet
testnet heal removes it. Your own commands still reach every node's API, and clients
on this machine still reach every node's depots.`,
		Example: `  qnet testnet partition 1,2 / 3,4,5
  qnet testnet partition node3          # node 3 against the rest`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("%s wants the nodes of one group, or of two separated by /, e.g. 1,2 / 3,4,5", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			groups, err := testnet.ParseGroups(args)
			if err != nil {
				return usageErr("%v", err)
			}
			t, err := open(true)
			if err != nil {
				return err
			}
			defer t.Close()
			sides, err := t.Partition(cmd.Context(), groups)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Partitioned: nodes %s / nodes %s (qnet testnet heal removes it)\n", joinInts(sides[0]), joinInts(sides[1]))
			return nil
		},
	}
}

func (a *app) testnetHealCmd(open openFunc) *cobra.Command {
	return &cobra.Command{
		Use:     "heal",
		Short:   "Remove the partition",
		Example: `  qnet testnet heal`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := open(true)
			if err != nil {
				return err
			}
			defer t.Close()
			had, err := t.Heal(cmd.Context())
			if err != nil {
				return err
			}
			if !had {
				fmt.Fprintln(a.stdout, "No partition was in place.")
				return nil
			}
			fmt.Fprintln(a.stdout, "Healed: every node reaches every other again.")
			return nil
		},
	}
}

func (a *app) testnetDownCmd(open openFunc) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "down [--keep]",
		Short: "Kill every node and remove the testnet",
		Long: `Kill every node with its depots, remove the partition, the network namespaces, the
nodes' cgroups and the context testnet-NAME, and the testnet's directory (unless
--keep, which leaves the data dirs and logs to read).`,
		Example: `  qnet testnet down
  qnet testnet down --keep`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := open(true)
			if err != nil {
				return err
			}
			defer t.Close()
			if err := t.Down(cmd.Context(), keep); err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(a.stdout, "Testnet %q is down; its directory %s is kept.\n", t.State.Name, t.Dir)
			} else {
				fmt.Fprintf(a.stdout, "Testnet %q is down and removed.\n", t.State.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the testnet's directory (data dirs and logs)")
	return cmd
}
