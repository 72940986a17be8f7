package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

func (a *app) rolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow, pause, resume and undo the rollouts of services",
		Long: `Every apply of a changed manifest makes a new, immutable revision of the service on
the ledger, and the controller rolls the replicas over to it: new replicas are added up
to spec.replicas + maxSurge, old ones removed only while spec.replicas - maxUnavailable
stay ready, after an optional canary step. A rollout that makes no progress within its
progressDeadline fails; with autoRevert the service goes back to its last good revision.

A second apply while a rollout runs wins: the newer revision becomes the target at once,
replicas of the one it replaces count as old, and the last fully rolled-out revision
stays the one a revert goes back to.`,
		Example: `  qnet rollout status web
  qnet rollout history web
  qnet rollout undo web --to-revision 2
  qnet rollout pause web && qnet rollout resume web`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	cmd.AddCommand(a.rolloutStatusCmd(), a.rolloutHistoryCmd(), a.rolloutUndoCmd(), a.rolloutControlCmd(true), a.rolloutControlCmd(false))
	return cmd
}

func (a *app) rolloutStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show how the rollout of a service stands",
		Long: `Show the rollout of a service: its phase (progressing, paused, complete, failed,
reverted), the revision it rolls out and the stable one, and how many replicas of each
revision are placed and ready.`,
		Example: `  qnet rollout status web
  qnet rollout status web -o json`,
		Args:              exactArgs("SERVICE"),
		ValidArgsFunction: a.completeServices,
		RunE: a.showService(&output, formatTable,
			func(d *api.ServiceDetail) any { return rolloutDoc(d) },
			writeRolloutStatus),
	}
	outputFlag(cmd, &output, formatTable, formatJSON, formatYAML)
	return cmd
}

// rolloutView is the machine-readable form of `rollout status`.
type rolloutView struct {
	Service   string           `json:"service"`
	Newest    uint64           `json:"newest"`
	Rollout   *state.Rollout   `json:"rollout"`
	Desired   int              `json:"desired"`
	Revisions []revisionCounts `json:"revisions"`
}

type revisionCounts struct {
	Revision uint64 `json:"revision"`
	Placed   int    `json:"placed"`
	Ready    int    `json:"ready"`
}

func rolloutDoc(d *api.ServiceDetail) rolloutView {
	return rolloutView{Service: d.Name, Newest: d.Revision, Rollout: d.Rollout, Desired: d.Desired, Revisions: countByRevision(d)}
}

// countByRevision counts the depots of each revision, newest first.
func countByRevision(d *api.ServiceDetail) []revisionCounts {
	var out []revisionCounts
	idx := map[uint64]int{}
	for _, dp := range d.Depots {
		i, ok := idx[dp.Revision]
		if !ok {
			i = len(out)
			idx[dp.Revision] = i
			out = append(out, revisionCounts{Revision: dp.Revision})
		}
		out[i].Placed++
		if dp.Status.Ready {
			out[i].Ready++
		}
	}
	for i := range out { // few revisions: insertion sort, newest first
		for j := i; j > 0 && out[j].Revision > out[j-1].Revision; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// writeRolloutStatus renders the rollout of a service for people.
func writeRolloutStatus(w io.Writer, d *api.ServiceDetail, now time.Time) error {
	ro := d.Rollout
	if ro == nil {
		fmt.Fprintf(w, "service/%s: revision %d, no rollout recorded\n", d.Name, d.Revision)
		return nil
	}
	fmt.Fprintf(w, "service/%s: rollout of revision %d %s (since %s ago)\n", d.Name, ro.Applied, ro.Phase, age(ro.Since, now))
	if ro.Revision != ro.Applied {
		fmt.Fprintf(w, "  runs:     revision %d (revision %d failed)\n", ro.Revision, ro.Failed)
	}
	stable := "none yet"
	if ro.Stable != 0 {
		stable = fmt.Sprintf("revision %d", ro.Stable)
	}
	fmt.Fprintf(w, "  stable:   %s\n", stable)
	fmt.Fprintf(w, "  replicas: %d desired, %d up-to-date, %d ready\n", d.Desired, d.Placed, d.Ready)
	if ro.Message != "" {
		fmt.Fprintf(w, "  message:  %s\n", oneLine(ro.Message))
	}
	if d.Unschedulable != "" {
		fmt.Fprintf(w, "  unschedulable: %s\n", oneLine(d.Unschedulable))
	}
	counts := countByRevision(d)
	if len(counts) == 0 {
		return nil
	}
	t := newTable(w)
	fmt.Fprintln(t, "REVISION\tDEPOTS\tREADY\tROLE")
	for _, c := range counts {
		fmt.Fprintf(t, "%d\t%d\t%d\t%s\n", c.Revision, c.Placed, c.Ready, revisionRole(ro.Revision, ro.Stable, ro.Applied, c.Revision))
	}
	return t.Flush()
}

// revisionRole names what a revision is to the rollout.
func revisionRole(target, stable, applied, rev uint64) string {
	switch {
	case rev == target && rev == stable:
		return "stable"
	case rev == target:
		return "target"
	case rev == stable:
		return "stable (old)"
	case rev == applied:
		return "failed"
	}
	return "old"
}

func (a *app) rolloutHistoryCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history SERVICE",
		Short: "List the revisions of a service: who applied each, when, and why",
		Long: `List the revisions of a service, oldest first: who signed each apply, when it was
committed, why (the cause an undo records), and which revision runs now.`,
		Example: `  qnet rollout history web
  qnet rollout history web -o yaml`,
		Args:              exactArgs("SERVICE"),
		ValidArgsFunction: a.completeServices,
		RunE: a.showService(&output, formatTable,
			func(d *api.ServiceDetail) any { return nonNil(d.Revisions) },
			writeHistory),
	}
	outputFlag(cmd, &output, formatTable, formatJSON, formatYAML)
	return cmd
}

// writeHistory renders the revisions of a service as a table.
func writeHistory(w io.Writer, d *api.ServiceDetail, now time.Time) error {
	t := newTable(w)
	fmt.Fprintln(t, "REVISION\tAPPLIED-BY\tAGE\tBLOCK\tSTATUS\tCAUSE")
	for _, r := range d.Revisions {
		status := ""
		if ro := d.Rollout; ro != nil {
			switch {
			case r.Revision == ro.Applied:
				status = string(ro.Phase)
				if ro.Revision != ro.Applied {
					status += fmt.Sprintf(" (runs %d)", ro.Revision)
				}
			case r.Revision == ro.Stable:
				status = "stable"
			}
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%d\t%s\t%s\n", r.Revision, orDash(r.AppliedBy), age(r.At, now), r.Height, orDash(status), orDash(oneLine(r.Cause)))
	}
	return t.Flush()
}

func (a *app) rolloutUndoCmd() *cobra.Command {
	var (
		to      uint64
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "undo SERVICE",
		Short: "Roll a service back to an earlier revision",
		Long: `Apply the spec of an earlier revision of a service (--to-revision N, or the revision
before the newest) as a new revision, signed with your operator key and recorded with
the cause "undo to revision N". It rolls out like any apply, with the rollout settings
of that revision. With --wait, qnet follows the rollout until it completes.`,
		Example: `  qnet rollout undo web
  qnet rollout undo web --to-revision 1 --wait`,
		Args:              exactArgs("SERVICE"),
		ValidArgsFunction: a.completeServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("to-revision") && to == 0 {
				return usageErr("invalid value 0 for --to-revision: revisions are numbered from 1 (qnet rollout history %s lists them)", args[0])
			}
			if timeout <= 0 {
				return usageErr("invalid value %s for --timeout: want a positive duration such as 2m", timeout)
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			res, from, err := cl.Undo(cmd.Context(), args[0], to)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "service/%s rolled back to revision %d: %s (revision %d)\n", res.Name, from, res.Action, res.Revision)
			if !wait {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return waitServices(ctx, cl, a.stdout, []client.ApplyResult{res}, timeout)
		},
	}
	cmd.Flags().Uint64Var(&to, "to-revision", 0, "the revision to go back to (default: the one before the newest)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollout until it completes")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits before failing")
	return cmd
}

func (a *app) rolloutControlCmd(pause bool) *cobra.Command {
	var reason string
	verb, short, long, example := "resume", "Let a paused rollout go on",
		`Let a paused rollout go on. Its progress deadline counts from now.`,
		`  qnet rollout resume web`
	if pause {
		verb, short, long, example = "pause", "Pause the rollout of a service",
			`Pause the rollout of a service: the controller adds and removes no replica of it (but
still replaces replicas lost with their nodes, in kind) until qnet rollout resume. A
revision applied while paused waits too. Only a progressing or complete rollout can be
paused.`,
			`  qnet rollout pause web --reason "canary error rate"`
	}
	cmd := &cobra.Command{
		Use:               verb + " SERVICE",
		Short:             short,
		Long:              long,
		Example:           example,
		Args:              exactArgs("SERVICE"),
		ValidArgsFunction: a.completeServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			f := cl.ResumeRollout
			if pause {
				f = cl.PauseRollout
			}
			res, err := f(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			past := "resumed"
			if pause {
				past = "paused"
			}
			fmt.Fprintf(a.stdout, "service/%s rollout %s (block %d)\n", args[0], past, res.Height)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded on the ledger")
	return cmd
}

// rolloutProgress is the rollout part of a progress line of apply --wait.
func rolloutProgress(d *api.ServiceDetail) string {
	ro := d.Rollout
	if ro == nil {
		return ""
	}
	s := "revision " + strconv.FormatUint(ro.Applied, 10) + " " + string(ro.Phase)
	if ro.Phase == ledger.RolloutReverted {
		s += fmt.Sprintf(", runs revision %d", ro.Revision)
	}
	return s
}
