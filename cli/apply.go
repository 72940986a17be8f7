package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/ledger"
)

func (a *app) applyCmd() *cobra.Command {
	var (
		file    string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR",
		Short: "Create or update services from manifests",
		Long: `Create or update services from manifest files. The manifests are checked here first
(every problem of every file is printed at once and nothing is applied), then each is
signed with your operator key and sent to the node as one batch of transactions.

Each service prints "service/NAME created", "configured" (a new revision) or
"unchanged", with its revision. With --wait, qnet follows the rollout until every
replica of every service is ready, printing a line each time the rollout moves, and
fails with the reason when it does not complete within --timeout: unschedulable
replicas, failing depots, a rollout that failed its progress deadline or was reverted
(spec.rollout.autoRevert), or a newer revision applied meanwhile (the newest wins).`,
		Example: `  qnet apply -f web.yaml
  qnet apply -f ./manifests/ --wait --timeout 5m`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageErr("-f/--filename is required: the manifest file, or a directory of them")
			}
			if timeout <= 0 {
				return usageErr("invalid value %s for --timeout: want a positive duration such as 2m", timeout)
			}
			svcs, err := decodeManifests(a.stderr, file)
			if err != nil {
				return err
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			results, err := cl.Apply(cmd.Context(), svcs)
			writeApplyResults(a.stdout, results)
			if err != nil {
				return err
			}
			if !wait {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return waitServices(ctx, cl, a.stdout, results, timeout)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "manifest file, or directory of *.yaml, *.yml and *.json manifests")
	_ = cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every replica is ready, showing progress")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits before failing")
	return cmd
}

// writeApplyResults prints what apply did, kubectl style; results of services that
// failed (no name) are skipped, their errors are reported separately.
func writeApplyResults(w io.Writer, results []client.ApplyResult) {
	for _, r := range results {
		if r.Name == "" {
			continue
		}
		fmt.Fprintf(w, "service/%s %s (revision %d)\n", r.Name, r.Action, r.Revision)
	}
}

// waitServices waits for each applied service to be ready, showing each change of a
// service's progress (redrawn in place on a terminal, a line per change elsewhere). On failure the error says why replicas are not ready.
func waitServices(ctx context.Context, cl *client.Client, w io.Writer, results []client.ApplyResult, timeout time.Duration) error {
	for _, r := range results {
		if r.Name == "" {
			continue
		}
		var last *api.ServiceDetail
		lastLine := ""
		live := newLiveLine(w)
		err := cl.WaitRollout(ctx, r.Name, r.Revision, func(d *api.ServiceDetail) {
			last = d
			if line := progressLine(d); line != lastLine {
				live.Show(d.Ready, d.Desired, line)
				lastLine = line
			}
		})
		live.Done()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("service/%s not ready after %s: %s", r.Name, timeout, notReadyReason(last))
			}
			if ctx.Err() != nil { // interrupted
				return fmt.Errorf("service/%s: stopped waiting: %s", r.Name, notReadyReason(last))
			}
			return fmt.Errorf("service/%s: %w", r.Name, err)
		}
		if last != nil {
			fmt.Fprintf(w, "service/%s ready: %d/%d replicas (revision %d)\n", r.Name, last.Ready, last.Desired, last.Revision)
		}
	}
	return nil
}

// progressLine is one line of rollout progress.
func progressLine(d *api.ServiceDetail) string {
	s := fmt.Sprintf("service/%s: %d/%d ready, %d/%d up-to-date, %d running (revision %d)",
		d.Name, d.Ready, d.Desired, d.Placed, d.Desired, d.Running, d.Revision)
	if old := len(d.Depots) - d.Placed; old > 0 {
		s += fmt.Sprintf(", %d old replica(s) to replace", old)
	}
	if ro := rolloutProgress(d); ro != "" {
		s += "; rollout: " + ro
	}
	if d.Unschedulable != "" {
		s += "; unschedulable: " + oneLine(d.Unschedulable)
	}
	return s
}

// notReadyReason says why a service is not ready, from its last known state: how many
// replicas are ready, why some cannot be placed, and what its failing depots report.
func notReadyReason(d *api.ServiceDetail) string {
	if d == nil {
		return "no answer from the node"
	}
	parts := []string{fmt.Sprintf("%d/%d replicas ready", d.Ready, d.Desired)}
	if d.Unschedulable != "" {
		parts = append(parts, "unschedulable: "+oneLine(d.Unschedulable))
	}
	if old := len(d.Depots) - d.Placed; old > 0 {
		parts = append(parts, fmt.Sprintf("%d replica(s) of older revisions not yet replaced", old))
	}
	for _, dp := range d.Depots {
		if dp.Status.Ready {
			continue
		}
		switch st := dp.Status; {
		case st.State == ledger.DepotFailing || st.State == ledger.DepotExited || st.Reason != "":
			parts = append(parts, fmt.Sprintf("depot %s on %s is %s: %s", dp.ID, nodeName(dp), depotState(st), orDash(oneLine(st.Reason))))
		case st.Restarts > 0:
			parts = append(parts, fmt.Sprintf("depot %s on %s is %s after %d restart(s)", dp.ID, nodeName(dp), depotState(st), st.Restarts))
		}
	}
	return strings.Join(parts, "; ") + fmt.Sprintf(" (see qnet describe service %s)", d.Name)
}
