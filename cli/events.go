package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/client"
)

func (a *app) eventsCmd() *cobra.Command {
	var (
		follow  bool
		service string
		output  string
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the network's recent events",
		Long: `Print what recently changed in the network's state: services applied and deleted,
depots placed, started, ready, failing or exited, nodes updated. With -f, keep printing
new events until interrupted.

-o json prints one JSON document per line (JSON Lines), -o yaml one YAML document per
event, so the output can be read while it streams.`,
		Example: `  qnet events
  qnet events -f --service hello
  qnet events -o json | jq .message`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if output == formatTable {
				fmt.Fprintf(a.stdout, eventLine, "TIME", "BLOCK", "KIND", "SERVICE", "MESSAGE")
			}
			return cl.Events(cmd.Context(), service, follow, func(e client.Event) error {
				return writeEvent(a.stdout, output, e)
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	cmd.Flags().StringVar(&service, "service", "", "only the events of this service")
	_ = cmd.RegisterFlagCompletionFunc("service", a.completeServices)
	outputFlag(cmd, &output, formatTable, formatJSON, formatYAML)
	return cmd
}

// eventLine lays out an event as fixed-width columns, since a stream cannot be aligned
// after the fact.
const eventLine = "%-19s  %6v  %-21s  %-16s  %s\n"

// writeEvent prints one event in the chosen format.
func writeEvent(w io.Writer, format string, e client.Event) error {
	switch format {
	case formatJSON:
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = w.Write(append(data, '\n'))
		return err
	case formatYAML:
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
		return writeDoc(w, formatYAML, e)
	}
	_, err := fmt.Fprintf(w, eventLine, e.Time.Local().Format(time.DateTime), e.Height, e.Kind, orDash(e.Service), oneLine(e.Message))
	return err
}
