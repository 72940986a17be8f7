package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
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

	list := inputListCmd(a, "List configurations: names, versions, sizes, who put them and when",
		`  qnet config list -o json`,
		(*client.Client).Configs,
		"NAME\tVERSION\tSIZE\tSHA256\tUPDATED BY\tUPDATED\tUSED BY",
		func(c api.ConfigInfo, now time.Time) string {
			return fmt.Sprintf("%s\t%d\t%d\t%.12s\t%s\t%s\t%s", c.Name, c.Version, c.Size, c.SHA256, c.UpdatedBy, age(c.Updated, now), orDash(strings.Join(c.UsedBy, ",")))
		})

	rm := a.inputRemoveCmd("config", "Remove a configuration that no service names", "",
		`  qnet config rm nginx-conf`,
		(*client.Client).RemoveConfig)
	cmd.AddCommand(put, list, rm)
	return cmd
}
