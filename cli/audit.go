package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// auditCmd cross-checks the network's transfer receipts.
func (a *app) auditCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Cross-check the receipts of every transfer between nodes",
		Long: `Every connection that crosses between nodes leaves a receipt signed by both ends: the
flow, the service, and the bytes and a hash of the content each way. Each node commits
batches of its receipts as Merkle roots on the ledger. qnet audit gathers every node's
receipts through the mesh and checks them against each other and against the roots:
mismatched views (data changed on the way), receipts one end lacks, bad signatures,
batches that do not match their root or were never committed. It names the nodes at
fault where the evidence allows, and lists the flows that were refused (by the proxy,
or because the replica asked for was not there).

Exits with status 1 when it finds anything.`,
		Example: `  qnet audit
  qnet audit -o json`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			rep, err := cl.Audit(cmd.Context())
			if err != nil {
				return err
			}
			if output != formatText {
				if err := writeDoc(a.stdout, output, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "%d flow(s), %d agreed by both ends, %d finding(s), %d refused flow(s)\n",
					rep.Flows, rep.Agreed, len(rep.Findings), len(rep.Refusals))
				for _, u := range rep.Unreachable {
					fmt.Fprintf(a.stdout, "unreachable: %s\n", u)
				}
				if len(rep.Findings) > 0 {
					fmt.Fprintln(a.stdout, "\nFINDINGS")
					t := newTable(a.stdout)
					fmt.Fprintln(t, "KIND\tNODES\tCERTAIN\tFLOW\tLINK\tDETAIL")
					for _, f := range rep.Findings {
						fmt.Fprintf(t, "%s\t%s\t%v\t%s\t%s\t%s\n", f.Kind, strings.Join(f.Nodes, ","), f.Determined, orDash(f.Flow), orDash(f.Link), f.Detail)
					}
					if err := t.Flush(); err != nil {
						return err
					}
				}
				if len(rep.Refusals) > 0 {
					fmt.Fprintln(a.stdout, "\nREFUSED FLOWS")
					t := newTable(a.stdout)
					fmt.Fprintln(t, "NODE\tFROM\tTO\tAT\tREASON")
					for _, r := range rep.Refusals {
						from := strings.Trim(r.FromNode+"/"+r.FromService+"/"+r.FromDepot, "/")
						fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", r.Node, orDash(from), r.ToService+"/"+r.ToPort, r.At.Format("15:04:05"), r.Reason)
					}
					if err := t.Flush(); err != nil {
						return err
					}
				}
			}
			if len(rep.Findings) > 0 || len(rep.Unreachable) > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	outputFlag(cmd, &output, formatText, formatJSON, formatYAML)
	return cmd
}
