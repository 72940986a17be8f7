package controller

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/state"
)

// serviceGroup is a service's placements, sorted by what the rollout does with them.
type serviceGroup struct {
	// cur run the revision the service is driven to (or one equivalent to it).
	cur []*state.Placement
	// old run another revision, on live nodes.
	old []*state.Placement
	// dead were on nodes that are gone or not alive; they are removed already.
	dead []*state.Placement
}

// servicePlan is what the reconciler does for one service.
type servicePlan struct {
	remove []removal
	// keep are the live placements that stay.
	keep []*state.Placement
	add  []addition
	// status, when set, ends the phase of the service's rollout.
	status *ledger.RolloutStatus
}

type removal struct{ id, cause string }

// addition asks for new replicas of a revision, one per slot.
type addition struct {
	revision uint64
	slots    []int
}

// planService decides the rolling update of one service, level-triggered, from the
// placements as they are:
//
//   - Paused and failed rollouts hold: nothing is added or removed but the replicas on
//     dead nodes, which come back in kind (same revision, same slot), so failover still
//     works while an operator looks.
//   - With no placement of another revision, the service is scaled to its replicas
//     (excess replicas in the highest slots go, missing ones are placed).
//   - Otherwise old placements that are not ready go at once (they serve nothing), and
//     ready ones go only while replicas-maxUnavailable stay ready; new ones are added
//     while the total stays within replicas+maxSurge. A canary step lets only `canary`
//     new replicas exist until they have been ready for the canary window.
//   - A progressing rollout completes when every replica is new and ready; it fails
//     when no new replica became ready within its progress deadline (not counting the
//     canary hold), and with autoRevert is reverted to the stable revision instead.
//     The decision that ends it holds the service for this pass.
func planService(svc *state.Service, g *serviceGroup, now time.Time) servicePlan {
	var plan servicePlan
	ro := svc.CurrentRollout()
	run := ro.Revision
	n := svc.Spec.Spec.Replicas
	pol := svc.Spec.Spec.RolloutPolicy()
	bySlot := func(a, b *state.Placement) int {
		return cmp.Or(cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.ID, b.ID))
	}
	// The store lists placements by service and slot: sorting is rarely needed.
	if !slices.IsSortedFunc(g.cur, bySlot) {
		slices.SortFunc(g.cur, bySlot)
	}
	if !slices.IsSortedFunc(g.old, bySlot) {
		slices.SortFunc(g.old, bySlot)
	}

	hold := func() servicePlan {
		plan.keep = append(append(plan.keep, g.cur...), g.old...)
		for _, p := range g.dead {
			plan.add = append(plan.add, addition{revision: p.Revision, slots: []int{p.Slot}})
		}
		return plan
	}
	if ro.Phase == ledger.RolloutPaused || ro.Phase == ledger.RolloutFailed {
		return hold()
	}

	// Excess replicas of the run revision go first, from the highest slots.
	cur := g.cur
	if len(cur) > n {
		for _, p := range cur[n:] {
			plan.remove = append(plan.remove, removal{p.ID, fmt.Sprintf("%s scaled down to %d:", svc.Name, n)})
		}
		cur = cur[:n]
	}
	// When the ready depots became ready matters only to a rollout in progress (its
	// canary window and deadline); a settled service of many replicas skips it.
	progressing := ro.Phase == ledger.RolloutProgressing && ro.Revision == ro.Applied
	readyCur := 0
	var readySince []time.Time
	for _, p := range cur {
		if isReady(p) {
			readyCur++
			if progressing {
				readySince = append(readySince, p.Status.Since)
			}
		}
	}
	slices.SortFunc(readySince, time.Time.Compare)

	// The canary step: only pol.Canary new replicas until they have been ready, all of
	// them, for the canary window.
	canary := pol.Canary > 0 && progressing && len(g.old) > 0
	canaryHeld, canaryPassed := false, false
	var holdEnd time.Time
	if canary && len(readySince) >= pol.Canary {
		holdEnd = readySince[pol.Canary-1].Add(time.Duration(pol.CanaryWindow))
		canaryPassed = !now.IsZero() && !now.Before(holdEnd)
		canaryHeld = !canaryPassed
	}
	if !canary {
		canaryPassed = true
	}

	// The progress deadline: the rollout fails when no new replica became ready for
	// that long, counting from the start of the phase and not while canaries are held.
	if progressing {
		if len(g.old) == 0 && len(cur) == n && readyCur == n {
			plan.status = &ledger.RolloutStatus{Service: svc.Name, Revision: ro.Applied, Phase: ledger.RolloutComplete,
				Message: fmt.Sprintf("%d of %d replicas of revision %d ready", readyCur, n, run), At: now}
		} else if !now.IsZero() && !canaryHeld {
			last := ro.Since
			for _, t := range readySince {
				last = later(last, t)
			}
			if canary && canaryPassed {
				last = later(last, holdEnd)
			}
			if deadline := time.Duration(pol.ProgressDeadline); now.Sub(last) > deadline {
				st := &ledger.RolloutStatus{Service: svc.Name, Revision: ro.Applied, Phase: ledger.RolloutFailed, At: now,
					Message: fmt.Sprintf("no new replica became ready for %s (%d of %d replicas of revision %d ready)", deadline, readyCur, n, run)}
				if pol.AutoRevert && ro.Stable != 0 && ro.Stable != ro.Revision {
					st.Phase = ledger.RolloutReverted
				}
				plan.status = st
				plan.remove = nil
				return hold()
			}
		}
	}

	plan.keep = append(plan.keep, cur...)
	total := len(cur)
	if len(g.old) > 0 {
		cause := fmt.Sprintf("%s revision %d replaces", svc.Name, run)
		readyOld := 0
		for _, p := range g.old {
			if isReady(p) {
				readyOld++
			}
		}
		_, unavailable := pol.Bounds(n)
		spare := readyCur + readyOld - (n - unavailable)
		// Old replicas that are not ready serve nothing: they go at once. Ready ones go,
		// highest slots first, while enough replicas stay ready.
		gone := make([]bool, len(g.old))
		for i := len(g.old) - 1; i >= 0; i-- {
			switch {
			case !isReady(g.old[i]):
				gone[i] = true
			case spare > 0:
				spare--
				gone[i] = true
			}
		}
		var keepOld []*state.Placement
		for i, p := range g.old {
			if gone[i] {
				plan.remove = append(plan.remove, removal{p.ID, cause})
			} else {
				keepOld = append(keepOld, p)
			}
		}
		plan.keep = append(plan.keep, keepOld...)
		total += len(keepOld)
	}

	want := n
	if canary && !canaryPassed {
		want = min(n, pol.Canary)
	}
	surge, _ := pol.Bounds(n)
	if len(g.old) == 0 {
		surge = 0
	}
	missing := min(want-len(cur), n+surge-total)
	if missing > 0 {
		used := make(map[int]bool, len(cur))
		for _, p := range cur {
			used[p.Slot] = true
		}
		a := addition{revision: run}
		for slot := 0; len(a.slots) < missing; slot++ {
			if !used[slot] {
				a.slots = append(a.slots, slot)
			}
		}
		plan.add = append(plan.add, a)
	}
	return plan
}

// isReady reports whether a placement's node reported it ready.
func isReady(p *state.Placement) bool { return p.Status != nil && p.Status.Ready }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
