package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/gossip"
	"qnet.dev/qnet/node"
)

// stopTimeout bounds how long a node may take to stop once asked.
const stopTimeout = 30 * time.Second

func (a *app) agentCmd() *cobra.Command {
	var (
		dataDir string
		// apiAddr empty means where the ledger records the node's API (see node.Config).
		apiAddr     string
		meshAddr    string
		dnsAddr     string
		ingressAddr string
		join        string
		token       string
		name        string
		gossipP     string
		cpuM        int64
		memB        int64
	)
	cmd := &cobra.Command{
		Use:   "agent --data-dir DIR",
		Short: "Run this machine's node of a network",
		Long: `Run the node whose data dir is --data-dir (made by qnet init): its share of the
ledger, its API, and the depots the network places on it. Runs until interrupted
(Ctrl-C or SIGTERM).

Stopping the agent does not stop its depots: they keep running and serving, and the
next qnet agent on the same data dir adopts them again rather than starting them anew.
Delete their services (qnet delete service) to stop them for good.

To add a machine to a network, give it an empty data dir, the mesh address of a
member and a join token made there (qnet token create): the new node checks that it
talks to the node the token names, is admitted by a ledger transaction that records its
keys, verifies the chain from genesis and starts following it.

--cpu and --memory limit what the node offers to depots; by default it offers the
whole machine.`,
		Example: `  qnet agent --data-dir /var/lib/qnet
  qnet agent --data-dir ./node1 --api-addr 0.0.0.0:7700 --cpu 2000m --memory 4Gi
  qnet agent --data-dir ./node2 --join 10.0.0.5:7701 --token qnetjoin1_eyJu...`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return usageErr("--data-dir is required: the directory qnet init made for this node")
			}
			ctx := cmd.Context()
			cfg := node.DefaultConfig(dataDir)
			if (join == "") != (token == "") && token == "" {
				return usageErr("--join needs --token: create one on a member with qnet token create")
			}
			cfg.APIAddr, cfg.CPU, cfg.Memory = apiAddr, cpuM, memB
			cfg.MeshAddr, cfg.Join, cfg.Token, cfg.Name = meshAddr, join, token, name
			if cmd.Flags().Changed("dns-addr") {
				cfg.DNSAddr = dnsAddr
			}
			if cmd.Flags().Changed("ingress-addr") {
				cfg.IngressAddr = ingressAddr
			}
			cfg.Gossip = gossip.Profile(gossipP)
			cfg.Logger = a.logger(slog.LevelInfo)
			n, err := node.Start(ctx, cfg)
			if err != nil {
				return err
			}
			st := n.Status()
			fmt.Fprintf(a.stdout, "Node %s (%s) of network %q is running; API at %s\n", st.NodeName, n.ID(), st.Network, serverURL(n.APIAddr()))
			fmt.Fprintln(a.stdout, "Press Ctrl-C to stop the agent; its depots keep running and are adopted at its next start.")
			<-ctx.Done()
			fmt.Fprintln(a.stdout, "Stopping the agent (depots keep running)...")
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			if err := n.Close(cctx); err != nil {
				return fmt.Errorf("stop node: %w", err)
			}
			fmt.Fprintln(a.stdout, "Agent stopped.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "the node's data dir, made by qnet init (required)")
	f.Var(addrValue{&apiAddr}, "api-addr", "address the API listens on (default: the one given to qnet init, or where the node last listened; port 0 picks a free one)")
	f.Var(addrValue{&meshAddr}, "mesh-addr", "address the node's tunnels are accepted on (default: where the node last listened, else "+node.DefaultMeshAddr+")")
	f.StringVar(&join, "join", "", "mesh address of a member to join through (with --token; the data dir must be empty)")
	f.StringVar(&token, "token", "", "join token made by qnet token create on a member")
	f.StringVar(&name, "name", "", "name of a joining node (default: the host name)")
	f.Var(addrValue{&dnsAddr}, "dns-addr", "address the node answers DNS on for SERVICE.NETWORK.qnet, UDP and TCP (default "+node.DefaultDNSAddr+"; port 0 picks a free one)")
	f.Var(addrValue{&ingressAddr}, "ingress-addr", "address the node takes outside HTTP traffic on for exposed services; their other exposed tcp ports listen on its host (default "+node.DefaultIngressAddr+")")
	choiceFlag(cmd, f, &gossipP, "gossip", "", "failure detection profile", "lan", "wan")
	f.Var(cpuValue{&cpuM}, "cpu", "CPU offered to depots, e.g. 500m or 2 (default: all cores)")
	f.Var(memoryValue{&memB}, "memory", "memory offered to depots, e.g. 512Mi or 4Gi (default: all RAM)")
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}
