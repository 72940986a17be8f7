package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/node"
)

// stopTimeout bounds how long a node may take to stop once asked.
const stopTimeout = 30 * time.Second

func (a *app) agentCmd() *cobra.Command {
	var (
		dataDir string
		// apiAddr empty means where the ledger records the node's API (see node.Config).
		apiAddr string
		cpuM    int64
		memB    int64
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

--cpu and --memory limit what the node offers to depots; by default it offers the
whole machine.`,
		Example: `  qnet agent --data-dir /var/lib/qnet
  qnet agent --data-dir ./node1 --api-addr 0.0.0.0:7700 --cpu 2000m --memory 4Gi`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return usageErr("--data-dir is required: the directory qnet init made for this node")
			}
			ctx := cmd.Context()
			cfg := node.DefaultConfig(dataDir)
			cfg.APIAddr, cfg.CPU, cfg.Memory = apiAddr, cpuM, memB
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
	f.Var(cpuValue{&cpuM}, "cpu", "CPU offered to depots, e.g. 500m or 2 (default: all cores)")
	f.Var(memoryValue{&memB}, "memory", "memory offered to depots, e.g. 512Mi or 4Gi (default: all RAM)")
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}
