package cli

import (
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
)

// contextView is a context as shown to people: the token is never printed.
type contextView struct {
	Name        string `json:"name"`
	Current     bool   `json:"current"`
	Server      string `json:"server"`
	Network     string `json:"network,omitempty"`
	OperatorKey string `json:"operatorKey"`
	ServerKey   string `json:"serverKey"`
	Token       string `json:"token"`
}

func viewContext(name string, cfg *client.Config) contextView {
	c := cfg.Contexts[name]
	token := "<none>"
	if c.Token != "" {
		token = "<hidden>"
	}
	return contextView{Name: name, Current: name == cfg.Current, Server: c.Server, Network: c.Network,
		OperatorKey: c.OperatorKey, ServerKey: c.ServerKey, Token: token}
}

func (a *app) contextCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "List, select and show the contexts of the context file",
		Long: `A context says how to reach one network as one operator: the node's API address, the
pin of its TLS key, the operator's token and signing key. The context file
(--config, $QNET_CONFIG, default ~/.qnet/config.yaml) holds named contexts and which one
is current; qnet init and qnet dev write them. --context or $QNET_CONTEXT choose another
context for one command.`,
		Example: `  qnet context list
  qnet context use home
  qnet context show`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	var listOutput string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the contexts of the context file",
		Example: `  qnet context list`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := client.LoadConfig(a.configPath())
			if err != nil {
				return err
			}
			views := []contextView{}
			for _, name := range slices.Sorted(maps.Keys(cfg.Contexts)) {
				views = append(views, viewContext(name, cfg))
			}
			if listOutput != formatTable {
				return writeDoc(a.stdout, listOutput, views)
			}
			if len(views) == 0 {
				fmt.Fprintf(a.stderr, "No contexts in %s. qnet dev or qnet init write one.\n", a.configPath())
				return nil
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "CURRENT\tNAME\tSERVER\tNETWORK")
			for _, v := range views {
				cur := ""
				if v.Current {
					cur = "*"
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\n", cur, v.Name, v.Server, orDash(v.Network))
			}
			return t.Flush()
		},
	}
	outputFlag(list, &listOutput, formatTable, formatJSON, formatYAML)

	use := &cobra.Command{
		Use:               "use NAME",
		Short:             "Make a context the current one",
		Example:           `  qnet context use home`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.configPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return fmt.Errorf("context %q is not in %s (have: %v)", args[0], path, slices.Sorted(maps.Keys(cfg.Contexts)))
			}
			cfg.Current = args[0]
			if err := cfg.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Switched to context %q.\n", args[0])
			return nil
		},
	}

	var showOutput string
	show := &cobra.Command{
		Use:   "show [NAME]",
		Short: "Show a context (the current one by default), without its token",
		Long: `Show a context: the current one, or the one named by NAME, --context or $QNET_CONTEXT.
The operator's token is never printed.`,
		Example: `  qnet context show
  qnet context show home -o json`,
		Args:              rangeArgs(0, 1, "at most one context NAME"),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.configPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			want := a.contextFlag
			if len(args) == 1 {
				want = args[0]
			}
			name, _, err := cfg.Resolve(want)
			if err != nil {
				return fmt.Errorf("%w (context file %s)", err, path)
			}
			v := viewContext(name, cfg)
			if showOutput != formatText {
				return writeDoc(a.stdout, showOutput, v)
			}
			t := newTable(a.stdout)
			fmt.Fprintf(t, "Name:\t%s\n", v.Name)
			fmt.Fprintf(t, "Current:\t%s\n", yesNo(v.Current))
			fmt.Fprintf(t, "Server:\t%s\n", v.Server)
			fmt.Fprintf(t, "Network:\t%s\n", orDash(v.Network))
			fmt.Fprintf(t, "Server key pin:\t%s\n", orDash(v.ServerKey))
			fmt.Fprintf(t, "Operator key:\t%s\n", orDash(v.OperatorKey))
			fmt.Fprintf(t, "Token:\t%s\n", v.Token)
			fmt.Fprintf(t, "Context file:\t%s\n", path)
			return t.Flush()
		},
	}
	outputFlag(show, &showOutput, formatText, formatJSON, formatYAML)

	del := &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm"},
		Short:             "Remove a context from the context file",
		Long:              `Remove a context from the context file. Its token is gone with it; the network and its nodes are not touched.`,
		Example:           `  qnet context delete old-lab`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.configPath()
			cfg, err := client.LoadConfig(path)
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return fmt.Errorf("context %q is not in %s", args[0], path)
			}
			cfg.Remove(args[0])
			if err := cfg.Save(path); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Deleted context %q.\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, use, show, del)
	return cmd
}

// completeContexts completes context names from the context file.
func (a *app) completeContexts(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cfg, err := client.LoadConfig(a.configPath())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return slices.Sorted(maps.Keys(cfg.Contexts)), cobra.ShellCompDirectiveNoFileComp
}
