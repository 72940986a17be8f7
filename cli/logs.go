package cli

import (
	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
)

func (a *app) logsCmd() *cobra.Command {
	var (
		o      client.LogOptions
		stream string
	)
	cmd := &cobra.Command{
		Use:   "logs SERVICE",
		Short: "Print the logs of a service's depots",
		Long: `Print what a service's depots wrote to stdout and stderr. Each line starts with the
depot's ID in brackets when the service has several. With -f, keep printing new lines
until interrupted.

Logs are read from the node of the current context, which serves the logs of the depots
it runs.`,
		Example: `  qnet logs hello
  qnet logs hello -f --tail 10
  qnet logs hello --depot hello-1a2b3c4d --stream stderr`,
		Args:              exactArgs("SERVICE"),
		ValidArgsFunction: a.completeServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Tail < -1 {
				return usageErr("invalid value %d for --tail: want a number of lines >= 0, or -1 for all", o.Tail)
			}
			if stream != "all" {
				o.Stream = stream
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			return cl.Logs(cmd.Context(), args[0], o, a.stdout)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new lines until interrupted")
	f.IntVar(&o.Tail, "tail", -1, "print only the last N lines of each log first (-1: all)")
	f.StringVar(&o.Depot, "depot", "", "only the logs of this depot (an ID from qnet get depots)")
	choiceFlag(cmd, f, &stream, "stream", "", "which output of the depots", "all", "stdout", "stderr")
	return cmd
}
