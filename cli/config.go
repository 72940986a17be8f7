package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Put, list and remove configuration files",
		Long: `Configurations are files that depots get at the path their manifest names
(spec.configs). They are on the ledger in plain text, versioned, at most 256 KiB each:
put anything secret in a secret instead.`,
		Example: `  qnet config put nginx-conf --from-file ./nginx.conf
  qnet config list
  qnet config rm nginx-conf`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	var fromFile string
	put := &cobra.Command{
		Use:   "put NAME --from-file FILE",
		Short: "Put a new version of a configuration file",
		Long: `Put a new version of a configuration file: the first version is 1, each put adds one.
Services that name the configuration get a new revision, which replaces their depots
with ones that see the new file.`,
		Example: `  qnet config put nginx-conf --from-file ./nginx.conf`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fromFile == "" {
				return usageErr("config put: --from-file FILE is required")
			}
			data, err := readBounded(fromFile, nil)
			if err != nil {
				return fmt.Errorf("config put %s: %w", args[0], err)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, version, err := cl.PutConfig(cmd.Context(), args[0], data)
			if err != nil {
				return fmt.Errorf("config put %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "config/%s version %d put (block %d)\n", args[0], version, res.Height)
			return nil
		},
	}
	put.Flags().StringVar(&fromFile, "from-file", "", "read the configuration from FILE")

	var output string
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List configurations: names, versions, sizes, who put them and when",
		Example: `  qnet config list -o json`,
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			infos, err := cl.Configs(cmd.Context())
			if err != nil {
				return err
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, infos)
			}
			now := time.Now()
			t := newTable(a.stdout)
			fmt.Fprintln(t, "NAME\tVERSION\tSIZE\tSHA256\tUPDATED BY\tUPDATED\tUSED BY")
			for _, c := range infos {
				fmt.Fprintf(t, "%s\t%d\t%d\t%.12s\t%s\t%s\t%s\n", c.Name, c.Version, c.Size, c.SHA256, c.UpdatedBy, age(c.Updated, now), orDash(strings.Join(c.UsedBy, ",")))
			}
			return t.Flush()
		},
	}
	outputFlag(list, &output, formatTable, formatJSON, formatYAML)

	rm := &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a configuration that no service names",
		Example: `  qnet config rm nginx-conf`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, err := cl.RemoveConfig(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("config rm %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "config/%s removed (block %d)\n", args[0], res.Height)
			return nil
		},
	}
	cmd.AddCommand(put, list, rm)
	return cmd
}
