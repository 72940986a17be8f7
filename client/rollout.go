package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// Errors of rollouts; test with errors.Is.
var (
	// ErrRolloutFailed: the rollout made no progress within its deadline.
	ErrRolloutFailed = errors.New("rollout failed")
	// ErrRolloutReverted: the rollout failed and the service went back to its last good
	// revision.
	ErrRolloutReverted = errors.New("rollout failed and was reverted")
	// ErrSuperseded: a newer revision was applied while this one rolled out; the newest
	// wins.
	ErrSuperseded = errors.New("superseded by a newer revision")
	// ErrNoRevision: the service has no such revision.
	ErrNoRevision = errors.New("no such revision")
)

// PauseRollout pauses the rollout of a service: the controller adds and removes nothing
// for it (but replaces replicas lost with their nodes) until ResumeRollout. A new
// revision applied meanwhile waits too. reason is optional.
func (c *Client) PauseRollout(ctx context.Context, name, reason string) (api.TxResult, error) {
	return c.submitRollout(ctx, ledger.TxRolloutPause, ledger.RolloutControl{Service: name, Reason: reason})
}

// ResumeRollout lets a paused rollout go on; its progress deadline counts from now.
func (c *Client) ResumeRollout(ctx context.Context, name, reason string) (api.TxResult, error) {
	return c.submitRollout(ctx, ledger.TxRolloutResume, ledger.RolloutControl{Service: name, Reason: reason})
}

// submitRollout signs and submits one rollout transaction; a refusal names the
// transaction and the service.
func (c *Client) submitRollout(ctx context.Context, typ ledger.TxType, p ledger.RolloutControl) (api.TxResult, error) {
	res, err := c.submitOne(ctx, typ, p)
	if err != nil && res.Error != "" {
		return res, fmt.Errorf("%s %s: %s", typ, p.Service, res.Error)
	}
	return res, err
}

// UndoTarget is the revision Undo goes back to: to itself when it is not 0, else the
// revision before the newest. It fails with ErrNoRevision, listing the revisions there
// are, when there is no such revision.
func UndoTarget(d *api.ServiceDetail, to uint64) (state.Revision, error) {
	nums := make([]string, 0, len(d.Revisions))
	for _, r := range d.Revisions {
		nums = append(nums, strconv.FormatUint(r.Revision, 10))
	}
	if to == 0 {
		if d.Revision <= 1 {
			return state.Revision{}, fmt.Errorf("%w: service %s has only revision %d, there is no earlier one to go back to", ErrNoRevision, d.Name, d.Revision)
		}
		to = d.Revision - 1
	}
	i := slices.IndexFunc(d.Revisions, func(r state.Revision) bool { return r.Revision == to })
	if i < 0 {
		return state.Revision{}, fmt.Errorf("%w: service %s has no revision %d; its revisions are %s", ErrNoRevision, d.Name, to, strings.Join(nums, ", "))
	}
	if d.Revisions[i].Spec == nil {
		return state.Revision{}, fmt.Errorf("revision %d of %s carries no spec", to, d.Name)
	}
	return d.Revisions[i], nil
}

// Undo applies the spec of an earlier revision of a service (to, or the one before the
// newest when to is 0) as a new revision, signed by this operator, with the cause
// "undo to revision N". It rolls out like any other revision.
func (c *Client) Undo(ctx context.Context, name string, to uint64) (ApplyResult, uint64, error) {
	d, err := c.Service(ctx, name)
	if err != nil {
		return ApplyResult{}, 0, err
	}
	rev, err := UndoTarget(d, to)
	if err != nil {
		return ApplyResult{}, 0, err
	}
	// A copy: the revision's spec as it is on the ledger, digests and schemas resolved.
	data, err := json.Marshal(rev.Spec)
	if err != nil {
		return ApplyResult{}, 0, err
	}
	var spec manifest.Service
	if err := json.Unmarshal(data, &spec); err != nil {
		return ApplyResult{}, 0, fmt.Errorf("revision %d of %s: %w", rev.Revision, name, err)
	}
	t, err := c.Sign(ctx, ledger.TxServiceApply, ledger.ServiceApply{Service: &spec, Cause: fmt.Sprintf("undo to revision %d", rev.Revision)})
	if err != nil {
		return ApplyResult{}, 0, err
	}
	res, err := c.Submit(ctx, t)
	if err != nil {
		return ApplyResult{}, 0, err
	}
	if res[0].Error != "" {
		return ApplyResult{}, 0, fmt.Errorf("service %s: %s", name, res[0].Error)
	}
	after, err := c.Service(ctx, name)
	if err != nil {
		return ApplyResult{}, 0, err
	}
	out := ApplyResult{Name: name, Action: "configured", Revision: after.Revision, TxID: res[0].ID, Height: res[0].Height}
	if after.Revision == d.Revision {
		out.Action = "unchanged"
	}
	return out, rev.Revision, nil
}

// WaitRollout waits until the rollout of revision rev of the service completes,
// calling progress with each new view. It returns ErrRolloutFailed or
// ErrRolloutReverted (with the controller's message) when the rollout ends so,
// ErrSuperseded when a newer revision replaced it, ErrUnschedulable when the replicas
// cannot be placed, and, for a rollout that will not revert, ErrDepotsFailing when every
// new depot has exited or keeps failing. rev 0 means the newest revision.
func (c *Client) WaitRollout(ctx context.Context, name string, rev uint64, progress func(*api.ServiceDetail)) error {
	var w readyWatch
	noView := func(readErr error) error { return readErr }
	return c.watchService(ctx, name, noView, func(d *api.ServiceDetail) (bool, error) {
		if rev == 0 {
			rev = d.Revision
		}
		if progress != nil {
			progress(d)
		}
		if err := RolloutDone(d, rev); err != nil || rolloutComplete(d, rev) {
			return true, err
		}
		if err := w.check(d, time.Now()); err != nil {
			autoRevert := d.Spec != nil && d.Spec.Spec.RolloutPolicy().AutoRevert
			if errors.Is(err, ErrUnschedulable) || !autoRevert {
				return true, fmt.Errorf("service %s will not become ready: %w", name, err)
			}
		}
		return false, nil
	})
}

// RolloutDone returns the error that ends a wait for revision rev of the service in
// view d: the rollout failed, was reverted, or a newer revision replaced it; nil while
// it goes on or once it completed.
func RolloutDone(d *api.ServiceDetail, rev uint64) error {
	ro := d.Rollout
	if ro == nil {
		return nil
	}
	switch {
	case ro.Applied > rev:
		return fmt.Errorf("%w: revision %d of %s was applied while revision %d rolled out, and replaces it", ErrSuperseded, ro.Applied, d.Name, rev)
	case ro.Applied < rev:
		return nil // the node has not seen it yet
	case ro.Phase == ledger.RolloutFailed:
		return fmt.Errorf("%w: revision %d of %s: %s (qnet rollout undo %s goes back)", ErrRolloutFailed, rev, d.Name, ro.Message, d.Name)
	case ro.Phase == ledger.RolloutReverted:
		return fmt.Errorf("%w: revision %d of %s: %s; it runs revision %d again", ErrRolloutReverted, rev, d.Name, ro.Message, ro.Revision)
	}
	return nil
}

func rolloutComplete(d *api.ServiceDetail, rev uint64) bool {
	if d.Rollout == nil {
		return d.Ready >= d.Desired && d.Placed == d.Desired && countCurrent(d) == d.Desired
	}
	return d.Rollout.Applied == rev && d.Rollout.Phase == ledger.RolloutComplete
}
