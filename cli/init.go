package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/node"
)

func (a *app) initCmd() *cobra.Command {
	var opts node.InitOptions
	opts.APIAddr = defaultAPIAddr
	opts.MeshAddr = node.DefaultMeshAddr
	cmd := &cobra.Command{
		Use:   "init --data-dir DIR --network NAME",
		Short: "Create a new network with this machine as its first node",
		Long: `Create a new network of one node in --data-dir: the node's keys, the first operator's
signing key and API token, and the genesis block of the ledger.

A context for the new network (the node's API address, the token, the operator key and
the pin of the node's TLS key) is written to the context file and made current, so the
other commands reach the node once it runs. The global --context flag names that
context (default: the network's name). Start the node with qnet agent.`,
		Example: `  qnet init --data-dir /var/lib/qnet --network home
  qnet agent --data-dir /var/lib/qnet

  # Another address, operator and context name
  qnet init --data-dir ./node1 --network lab --operator alice --api-addr 10.0.0.5:7700 --context lab-alice`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.DataDir == "" {
				return usageErr("--data-dir is required: the directory to keep the node's keys and ledger in")
			}
			if opts.Network == "" {
				return usageErr("--network is required: the name of the new network, e.g. home")
			}
			if opts.Operator == "" {
				opts.Operator = defaultOperator()
			}
			contextName := a.contextFlag
			if contextName == "" {
				contextName = opts.Network
			}
			path := a.configPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			if _, taken := cfg.Contexts[contextName]; taken {
				return fmt.Errorf("context %q is already in %s: choose another name with --context, or remove it with `qnet context delete %s`", contextName, path, contextName)
			}
			res, err := node.Init(opts)
			if err != nil {
				return err
			}
			key, err := identity.Load(filepath.Join(opts.DataDir, node.NodeKeyFile))
			if err != nil {
				return fmt.Errorf("read the new node's key: %w", err)
			}
			pin, err := node.APIKeyPin(key)
			if err != nil {
				return err
			}
			opKey, err := filepath.Abs(res.OperatorKey)
			if err != nil {
				return fmt.Errorf("operator key path: %w", err)
			}
			cfg.Set(contextName, &client.Context{
				Server: serverURL(opts.APIAddr), Token: res.Token, OperatorKey: opKey, ServerKey: pin, Network: opts.Network,
			})
			if err := cfg.Save(path); err != nil {
				return fmt.Errorf("the network was created in %s, but its context could not be saved (the token is lost; remove the data dir and init again): %w", opts.DataDir, err)
			}
			t := newTable(a.stdout)
			fmt.Fprintf(t, "Created network %q in %s\n", opts.Network, opts.DataDir)
			fmt.Fprintf(t, "  network ID:\t%s\n", res.NetworkID)
			fmt.Fprintf(t, "  node ID:\t%s\n", res.NodeID)
			fmt.Fprintf(t, "  operator:\t%s (key %s)\n", opts.Operator, opKey)
			fmt.Fprintf(t, "  context:\t%s (current) in %s\n", contextName, path)
			if err := t.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\nStart the node with:\n  qnet agent --data-dir %s --api-addr %s\n", opts.DataDir, opts.APIAddr)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", "", "directory for the node's keys and ledger (required)")
	f.StringVar(&opts.Network, "network", "", "name of the new network (required)")
	f.StringVar(&opts.Operator, "operator", "", "name of the first operator (default: your user name)")
	f.Var(addrValue{&opts.APIAddr}, "api-addr", "address the node's API will listen on")
	f.Var(addrValue{&opts.MeshAddr}, "mesh-addr", "address the node's tunnels will be accepted on (default "+node.DefaultMeshAddr+")")
	f.StringVar(&opts.NodeName, "node-name", "", "name of this node (default: the host name)")
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}
