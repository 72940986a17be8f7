package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create and list join tokens",
		Long: `Join tokens admit new nodes. A token names the network (its genesis hash), the node
to contact and that node's key fingerprint, so the newcomer knows whom it talks to
before it says anything; it carries a secret whose hash only is on the ledger.`,
		Example: `  qnet token create --ttl 1h --uses 3
  qnet token list`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	var (
		ttl  time.Duration
		uses int
	)
	create := &cobra.Command{
		Use:   "create [--ttl D] [--uses N]",
		Short: "Create a join token for the node your context talks to",
		Long: `Create a join token: a token.create transaction, signed with your operator key,
records the hash of a fresh secret, the token's expiry and how many nodes it may admit.
The token is printed once; keep it secret until it is used. Give it to the new node:

  qnet agent --data-dir DIR --join ADDR --token TOKEN`,
		Example: `  qnet token create
  qnet token create --ttl 10m --uses 1`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 || ttl > 30*24*time.Hour {
				return usageErr("--ttl %s: want a duration between 1s and 720h", ttl)
			}
			if uses < 1 || uses > 10000 {
				return usageErr("--uses %d: want 1 to 10000", uses)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			tok, info, err := cl.CreateToken(cmd.Context(), ttl, uses)
			if err != nil {
				return fmt.Errorf("create token: %w", err)
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, tok)
			fmt.Fprintf(a.stderr, "Token %s admits %d node(s) until %s. On the new node:\n  qnet agent --data-dir DIR --join %s --token %s\n",
				info.ID, uses, info.Expires.Local().Format(time.RFC3339), st.MeshAddr, "<token>")
			return nil
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	create.Flags().IntVar(&uses, "uses", 1, "how many nodes it may admit")
	var output string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List join tokens (never their secrets)",
		Example: `  qnet token list
  qnet token list -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			toks, err := cl.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, toks)
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "ID\tEXPIRES\tUSES LEFT\tCREATED BY")
			for _, tk := range toks {
				exp := tk.Expires.Local().Format(time.RFC3339)
				if time.Now().After(tk.Expires) {
					exp += " (expired)"
				}
				fmt.Fprintf(t, "%s\t%s\t%d\t%s\n", tk.ID, exp, tk.UsesLeft, tk.CreatedBy)
			}
			return t.Flush()
		},
	}
	outputFlag(list, &output, formatTable, formatJSON, formatYAML)
	cmd.AddCommand(create, list)
	return cmd
}

func (a *app) nodeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "node",
		Short:   "Remove nodes and rotate their keys",
		Example: "  qnet node remove 3f2a9c21d4e5b607\n  qnet node rotate-keys",
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	remove := &cobra.Command{
		Use:   "remove NODE",
		Short: "Revoke a node: its keys are refused and its tunnels close at once",
		Long: `Remove a node from the network: a node.remove transaction, signed with your operator
key, revokes the node's keys. From that block on every node refuses them, closes the
node's tunnels, and places its depots elsewhere. NODE is the node's ID or name.`,
		Example: `  qnet node remove 3f2a9c21d4e5b607
  qnet node remove gateway-7`,
		Args:              exactArgs("NODE"),
		ValidArgsFunction: a.completeNodes,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			nodes, err := cl.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			id := ""
			for _, n := range nodes {
				if n.ID == args[0] || n.Name == args[0] {
					if id != "" && n.ID != id {
						return fmt.Errorf("more than one node is named %q: give its ID", args[0])
					}
					id = n.ID
				}
			}
			if id == "" {
				return fmt.Errorf("node %q not found (qnet get nodes lists them)", args[0])
			}
			res, err := cl.RemoveNode(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("remove node %s: %w", id, err)
			}
			fmt.Fprintf(a.stdout, "node/%s removed (block %d); its keys are revoked\n", id, res.Height)
			return nil
		},
	}
	rotate := &cobra.Command{
		Use:   "rotate-keys",
		Short: "Replace the keys of the node your context talks to",
		Long: `Replace the node's keys: it makes new ones and records them in a node.rotate
transaction, signed by its old key and agreed to by the new one. From that block on the
old keys are refused; the node's tunnels are re-established with the new ones. The node
keeps its ID. Your context's pin of the node's API key is updated.`,
		Example: `  qnet node rotate-keys`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := cl.RotateKeys(cmd.Context())
			if err != nil {
				return err
			}
			if err := a.updatePin(res.APIPin); err != nil {
				return fmt.Errorf("keys rotated, but the context file was not updated: %w", err)
			}
			fmt.Fprintf(a.stdout, "node/%s: key %s replaces %s (block %d)\n", res.Node, res.NewKey, res.OldKey, res.Height)
			return nil
		},
	}
	cmd.AddCommand(remove, rotate)
	return cmd
}

// completeNodes completes node names from the node of the current context.
func (a *app) completeNodes(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	nodes, err := cl.Nodes(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.ID, n.Name)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// updatePin records a node's new API key pin in the contexts that pinned its old one.
func (a *app) updatePin(pin string) error {
	path := a.configPath()
	cfg, err := client.LoadConfig(path)
	if err != nil {
		return err
	}
	name, c, err := cfg.Resolve(a.contextFlag)
	if err != nil {
		return err
	}
	c.ServerKey = pin
	cfg.Contexts[name] = c
	return cfg.Save(path)
}
