package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/manifest"
)

func (a *app) describeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe",
		Short: "Show the details of a service",
		Long: `Show everything about one object in a form for people: for a service, its spec, its
revision history, its depots with their state and the reason for it, and its recent
events.`,
		Example: `  qnet describe service hello`,
		Args:    cobra.ArbitraryArgs,
		RunE:    groupRun,
	}
	var output string
	svc := &cobra.Command{
		Use:     "service NAME",
		Aliases: []string{"services", "svc"},
		Short:   "Show a service's spec, revisions, depots and recent events",
		Long: `Show a service: a summary of its spec (depot, resources, ports, health checks,
restart policy), its revision history (who applied what, in which block), its depots
(node, state, readiness, restarts, address, the reason for their state, and which
resource limits are enforced), and its recent events. -o json or yaml prints the API's
document instead.`,
		Example: `  qnet describe service hello
  qnet describe svc hello -o yaml`,
		Args:              exactArgs("NAME"),
		ValidArgsFunction: a.completeServices,
		RunE: a.showService(&output, formatText,
			func(d *api.ServiceDetail) any { return d },
			writeServiceDetail),
	}
	outputFlag(svc, &output, formatText, formatJSON, formatYAML)
	cmd.AddCommand(svc)
	return cmd
}

// showService is the RunE of a command that shows the service its one argument names:
// as doc(d), in JSON or YAML, when *output names one of those, else in the format human
// (text or table) as write renders it for people.
func (a *app) showService(output *string, human string, doc func(*api.ServiceDetail) any, write func(io.Writer, *api.ServiceDetail, time.Time) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		d, err := cl.Service(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if *output != human {
			return writeDoc(a.stdout, *output, doc(d))
		}
		return write(a.stdout, d, a.now())
	}
}

// writeServiceDetail renders a service for people, in sections as kubectl describe does.
func writeServiceDetail(w io.Writer, d *api.ServiceDetail, now time.Time) error {
	t := newTable(w)
	field := func(name, format string, args ...any) {
		fmt.Fprintf(t, "%s:\t"+format+"\n", append([]any{name}, args...)...)
	}
	list := func(name string, items []string) {
		for i, it := range items {
			if i == 0 {
				field(name, "%s", it)
			} else {
				fmt.Fprintf(t, "\t%s\n", it)
			}
		}
	}

	field("Name", "%s", d.Name)
	var spec *manifest.Service
	if d.Spec != nil {
		spec = d.Spec
		if spec.Metadata.Network != "" {
			field("Network", "%s", spec.Metadata.Network)
		}
		list("Labels", keyValues(spec.Metadata.Labels))
	}
	rev := fmt.Sprintf("%d", d.Revision)
	if d.AppliedBy != "" {
		rev += ", applied by " + d.AppliedBy
	}
	if !d.Updated.IsZero() {
		rev += " " + age(d.Updated, now) + " ago"
	}
	field("Revision", "%s", rev)
	field("Created", "%s", timestamp(d.Created, now))
	field("Replicas", "%d desired, %d up-to-date, %d running, %d ready", d.Desired, d.Placed, d.Running, d.Ready)
	if ro := rolloutProgress(d); ro != "" {
		field("Rollout", "%s (qnet rollout status %s)", ro, d.Name)
	}
	if d.Unschedulable != "" {
		field("Unschedulable", "%s", oneLine(d.Unschedulable))
	}
	if spec != nil {
		sp := spec.Spec
		field("Depot", "%s", depotSummary(sp.Depot))
		if sp.Depot.Exec != nil && sp.Depot.Exec.WorkingDir != "" {
			field("Working dir", "%s", sp.Depot.Exec.WorkingDir)
		}
		field("Resources", "cpu %s, memory %s per replica", sp.Resources.CPU, sp.Resources.Memory)
		var ports []string
		for _, p := range sp.Ports {
			ports = append(ports, portSummary(p))
		}
		list("Ports", ports)
		list("Env", keyValues(sp.Env))
		field("Liveness", "%s", probeSummary(sp.Health.Liveness))
		field("Readiness", "%s", probeSummary(sp.Health.Readiness))
		r := sp.Restart
		field("Restart", "%s, backoff %s up to %s", orDash(string(r.Policy)), r.Backoff, r.MaxBackoff)
	}
	if err := t.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nRevisions:")
	if len(d.Revisions) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		t = newTable(w)
		fmt.Fprintln(t, "  REVISION\tAGE\tAPPLIED BY\tBLOCK\tTX\tREPLICAS\tDEPOT")
		for _, r := range d.Revisions {
			replicas, depot := "-", "-"
			if r.Spec != nil {
				replicas, depot = strconv.Itoa(r.Spec.Spec.Replicas), depotSummary(r.Spec.Spec.Depot)
			}
			cur := ""
			if r.Revision == d.Revision {
				cur = " (current)"
			}
			fmt.Fprintf(t, "  %d%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Revision, cur, age(r.At, now), orDash(r.AppliedBy),
				r.Height, r.TxID.Short(), replicas, depot)
		}
		if err := t.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nDepots:")
	if len(d.Depots) == 0 {
		fmt.Fprintln(w, "  <none>")
	} else {
		t = newTable(w)
		fmt.Fprintln(t, "  ID\tREV\tNODE\tSTATE\tSINCE\tREADY\tRESTARTS\tPID\tADDRESS\tAGE\tREASON")
		for _, dp := range d.Depots {
			pid := "-"
			if dp.Status.PID > 0 {
				pid = strconv.Itoa(dp.Status.PID)
			}
			fmt.Fprintf(t, "  %s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", dp.ID, dp.Revision, nodeName(dp),
				depotState(dp.Status), age(dp.Status.Since, now), yesNo(dp.Status.Ready), dp.Status.Restarts, pid,
				addrs(dp.Addrs), age(dp.Created, now), oneLine(dp.Status.Reason))
		}
		if err := t.Flush(); err != nil {
			return err
		}
		writeLimits(w, d.Depots)
	}

	fmt.Fprintln(w, "\nEvents:")
	if len(d.Events) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	t = newTable(w)
	fmt.Fprintln(t, "  AGE\tKIND\tDEPOT\tMESSAGE")
	for _, e := range d.Events {
		fmt.Fprintf(t, "  %s\t%s\t%s\t%s\n", age(e.Time, now), e.Kind, orDash(e.Depot), oneLine(e.Message))
	}
	return t.Flush()
}

// writeLimits says which resource limits are enforced on the depots: once when all say
// the same, else per depot.
func writeLimits(w io.Writer, ds []api.Depot) {
	seen := map[string]bool{}
	for _, d := range ds {
		if d.Status.Limits != "" {
			seen[d.Status.Limits] = true
		}
	}
	switch len(seen) {
	case 0:
		return
	case 1:
		for l := range seen {
			fmt.Fprintf(w, "  Limits: %s\n", oneLine(l))
		}
		return
	}
	fmt.Fprintln(w, "  Limits:")
	for _, d := range ds {
		if d.Status.Limits != "" {
			fmt.Fprintf(w, "    %s: %s\n", d.ID, oneLine(d.Status.Limits))
		}
	}
}

// keyValues lists a map as key=value in key order.
func keyValues(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// depotSummary says what a depot runs, in one line.
func depotSummary(d manifest.Depot) string {
	if d.Exec == nil {
		return "-"
	}
	parts := []string{"exec", quoteArg(d.Exec.Command)}
	for _, a := range d.Exec.Args {
		parts = append(parts, quoteArg(a))
	}
	return strings.Join(parts, " ")
}

// quoteArg quotes an argument when a reader could not tell where it ends.
func quoteArg(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"'\\") {
		return strconv.Quote(s)
	}
	return s
}

// portSummary describes a port: "http 8080/tcp, host port 9000, exposed".
func portSummary(p manifest.Port) string {
	s := fmt.Sprintf("%d/%s", p.Port, orDash(p.Protocol))
	if p.Name != "" {
		s = p.Name + " " + s
	}
	if p.HostPort != 0 {
		s += fmt.Sprintf(", host port %d", p.HostPort)
	}
	if p.Expose {
		s += ", exposed"
	}
	return s
}

// probeSummary describes a health check in one line.
func probeSummary(p *manifest.Probe) string {
	if p == nil {
		return "<none>"
	}
	var check string
	switch {
	case p.HTTP != nil:
		check = "http GET " + p.HTTP.Path
		if p.HTTP.Port != "" {
			check += " on port " + p.HTTP.Port
		}
	case p.TCP != nil:
		check = "tcp connect"
		if p.TCP.Port != "" {
			check += " to port " + p.TCP.Port
		}
	case p.Exec != nil:
		args := make([]string, len(p.Exec.Command))
		for i, a := range p.Exec.Command {
			args[i] = quoteArg(a)
		}
		check = "exec " + strings.Join(args, " ")
	default:
		check = "?"
	}
	s := fmt.Sprintf("%s every %s, timeout %s, %d failure(s) to fail, %d success(es) to pass",
		check, p.Interval, p.Timeout, p.FailureThreshold, p.SuccessThreshold)
	if p.InitialDelay > 0 {
		s += ", initial delay " + p.InitialDelay.String()
	}
	return s
}
