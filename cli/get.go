package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/ledger"
)

func (a *app) getCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get",
		Short: "List services, depots or nodes",
		Long: `List services, depots (the replicas of services) or nodes, as a table or as the API's
JSON or YAML documents. Name one to see only it.`,
		Example: `  qnet get services
  qnet get svc hello -o yaml
  qnet get depots --service hello
  qnet get nodes -o json`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	choiceFlag(cmd, cmd.PersistentFlags(), &output, "output", "o", "output format", formatTable, formatJSON, formatYAML)

	services := &cobra.Command{
		Use:     "services [NAME]",
		Aliases: []string{"service", "svc"},
		Short:   "List services with how many of their replicas are ready",
		Long: `List services: the current revision, READY (ready replicas of the current revision
out of those desired), UP-TO-DATE (replicas placed at the current revision) and AGE.`,
		Example: `  qnet get services
  qnet get svc hello -o json`,
		Args:              rangeArgs(0, 1, "at most one service NAME"),
		ValidArgsFunction: a.completeServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var svcs []api.Service
			if len(args) == 1 {
				d, err := cl.Service(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if output != formatTable {
					return writeDoc(a.stdout, output, d.Service)
				}
				svcs = []api.Service{d.Service}
			} else if svcs, err = cl.Services(cmd.Context()); err != nil {
				return err
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, nonNil(svcs))
			}
			if len(svcs) == 0 {
				fmt.Fprintln(a.stderr, "No services. Deploy one with: qnet apply -f FILE")
				return nil
			}
			return writeServices(a.stdout, svcs, a.now())
		},
	}

	var service string
	depots := &cobra.Command{
		Use:     "depots [ID]",
		Aliases: []string{"depot"},
		Short:   "List depots: the replicas of services, where they run and how they are doing",
		Long: `List depots, the running replicas of services: on which node, their state, whether
they are ready, how often they restarted, the address they answer on, and the reason
for their state when there is one.`,
		Example: `  qnet get depots
  qnet get depots --service hello
  qnet get depot hello-1a2b3c4d -o yaml`,
		Args: rangeArgs(0, 1, "at most one depot ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ds, err := cl.Depots(cmd.Context(), service)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				var found []api.Depot
				for _, d := range ds {
					if d.ID == args[0] {
						found = append(found, d)
					}
				}
				if len(found) == 0 {
					return fmt.Errorf("depot %q not found (qnet get depots lists them)", args[0])
				}
				if output != formatTable {
					return writeDoc(a.stdout, output, found[0])
				}
				ds = found
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, nonNil(ds))
			}
			if len(ds) == 0 {
				fmt.Fprintln(a.stderr, "No depots.")
				return nil
			}
			return writeDepots(a.stdout, ds, a.now())
		},
	}
	depots.Flags().StringVar(&service, "service", "", "only the depots of this service")
	_ = depots.RegisterFlagCompletionFunc("service", a.completeServices)

	nodes := &cobra.Command{
		Use:     "nodes [NAME|ID]",
		Aliases: []string{"node"},
		Short:   "List the nodes of the network with their capacity and roles",
		Long: `List the nodes of the network: address, OS and architecture, CPU and memory reserved
by depots out of what the node offers, how many depots it runs, and whether it is a
validator (orders the ledger) and the current leader.`,
		Example: `  qnet get nodes
  qnet get node laptop -o yaml`,
		Args: rangeArgs(0, 1, "at most one node NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ns, err := cl.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				var found []api.Node
				for _, n := range ns {
					if n.Name == args[0] || n.ID == args[0] {
						found = append(found, n)
					}
				}
				if len(found) == 0 {
					return fmt.Errorf("node %q not found (qnet get nodes lists them)", args[0])
				}
				if output != formatTable && len(found) == 1 {
					return writeDoc(a.stdout, output, found[0])
				}
				ns = found
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, nonNil(ns))
			}
			return writeNodes(a.stdout, ns)
		},
	}
	cmd.AddCommand(services, depots, nodes)
	return cmd
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeServices renders services as a table.
func writeServices(w io.Writer, svcs []api.Service, now time.Time) error {
	t := newTable(w)
	fmt.Fprintln(t, "NAME\tREVISION\tREADY\tUP-TO-DATE\tAGE")
	for _, s := range svcs {
		fmt.Fprintf(t, "%s\t%d\t%d/%d\t%d\t%s\n", s.Name, s.Revision, s.Ready, s.Desired, s.Placed, age(s.Created, now))
	}
	return t.Flush()
}

// depotState is a depot's state, with its exit code once it exited.
func depotState(s ledger.DepotStatus) string {
	st := string(s.State)
	if st == "" {
		st = string(ledger.DepotPending)
	}
	if s.ExitCode != nil {
		st += fmt.Sprintf(" (exit %d)", *s.ExitCode)
	}
	return st
}

// nodeName is how a depot's node is shown: its name, else its ID.
func nodeName(d api.Depot) string {
	if d.NodeName != "" {
		return d.NodeName
	}
	return d.Node
}

// writeDepots renders depots as a table.
func writeDepots(w io.Writer, ds []api.Depot, now time.Time) error {
	t := newTable(w)
	fmt.Fprintln(t, "ID\tSERVICE\tREV\tNODE\tSTATE\tREADY\tRESTARTS\tADDRESS\tAGE\tREASON")
	for _, d := range ds {
		fmt.Fprintf(t, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Service, d.Revision, nodeName(d),
			depotState(d.Status), yesNo(d.Status.Ready), d.Status.Restarts, addrs(d.Addrs), age(d.Created, now),
			oneLine(d.Status.Reason))
	}
	return t.Flush()
}

// writeNodes renders nodes as a table.
func writeNodes(w io.Writer, ns []api.Node) error {
	t := newTable(w)
	fmt.Fprintln(t, "NAME\tID\tSTATUS\tADDRESS\tOS/ARCH\tCPU\tMEMORY\tDEPOTS\tVALIDATOR\tLEADER")
	for _, n := range ns {
		status := "alive"
		if !n.Alive {
			status = "unreachable"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s/%s\t%s/%s\t%s/%s\t%d\t%s\t%s\n", n.Name, n.ID, status, orDash(n.Addr),
			n.OS, n.Arch, cpu(n.CPUUsed), cpu(n.CPU), memory(n.MemUsed), memory(n.Memory), n.Depots,
			yesNo(n.Validator), yesNo(n.Leader))
	}
	return t.Flush()
}

// completeServices completes service names from the node of the current context; it
// offers nothing when the node cannot be reached.
func (a *app) completeServices(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	svcs, err := cl.Services(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.Name
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
