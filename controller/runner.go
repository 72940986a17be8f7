package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/scheduler"
	"qnet.dev/qnet/state"
)

// Runner runs the replica reconciler on the ordering leader whenever the state changes.
type Runner struct {
	Store *state.Store
	// IsLeader reports whether this node orders blocks now; only the leader decides.
	IsLeader func() bool
	// Alive reports whether a node is up; nil means every node is.
	Alive func(nodeID string) bool
	// Propose signs and submits a placement set, returning once it is committed.
	Propose func(ctx context.Context, set ledger.PlacementSet) error
	// Resync bounds how long the runner waits without a state change before it looks
	// again (leadership changes and node failures do not always change the state).
	Resync time.Duration
	// Settle gathers the state changes that come within it into one reconcile, so a
	// burst of blocks costs one pass over the state, not one per block.
	Settle time.Duration
	// NewID names new depots; nil means NewDepotID.
	NewID func(service string) string
	// MaxSetBytes bounds the JSON of one proposed placement set; a larger decision is
	// proposed as several sets, in order (see SplitSet). Zero means DefaultMaxSetBytes.
	MaxSetBytes int
	// ProposeRollout signs and submits a rollout status report (complete, failed,
	// reverted), returning once it is committed; nil leaves rollouts progressing.
	ProposeRollout func(ctx context.Context, st ledger.RolloutStatus) error
	// Now is the clock canary windows and progress deadlines are read from; nil means
	// time.Now. Tests set a fake one.
	Now func() time.Time
	Log *slog.Logger
}

// DefaultMaxSetBytes keeps a placement set well inside one transaction's payload
// (ledger.MaxPayloadSize): about 5,000 new depots.
const DefaultMaxSetBytes = ledger.MaxPayloadSize / 2

// Run reconciles until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	resync := r.Resync
	if resync <= 0 {
		resync = time.Second
	}
	t := time.NewTimer(resync)
	defer t.Stop()
	backoff := 50 * time.Millisecond
	for {
		_, changed := r.Store.Watch()
		wait := resync
		if r.IsLeader() {
			if err := r.Once(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.Log.Warn("replica reconcile failed", "err", err, "retry", backoff)
				wait = backoff
				backoff = min(2*backoff, 5*time.Second)
			} else {
				backoff = 50 * time.Millisecond
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
			if r.Settle > 0 && !ctxtime.Sleep(ctx, r.Settle) {
				return nil
			}
		case <-t.C:
		}
	}
}

// Once reads the state, decides and proposes once.
func (r *Runner) Once(ctx context.Context) error {
	services, err := r.Store.Services()
	if err != nil {
		return err
	}
	placements, err := r.Store.Placements(nil)
	if err != nil {
		return err
	}
	nodes, err := r.Store.Nodes()
	if err != nil {
		return err
	}
	revs := state.RevisionCache{Store: r.Store}
	// A reverted service runs its stable revision: the reconciler decides from its spec.
	for i := range services {
		svc := &services[i]
		if run := svc.RunRevision(); run != svc.Revision {
			rev, err := revs.Revision(svc.Name, run)
			if err != nil {
				return err
			}
			svc.Spec = rev.Spec
		}
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	in := ReplicaInput{Services: services, Placements: placements, NewID: r.NewID, Now: now(), Equivalent: revs.Equivalent}
	if in.NewID == nil {
		in.NewID = NewDepotID
	}
	in.Nodes = make([]scheduler.Node, 0, len(nodes))
	for _, n := range nodes {
		in.Nodes = append(in.Nodes, SchedulerNode(n, r.Alive == nil || r.Alive(n.ID)))
	}
	d := Reconcile(in)
	if err := r.proposeSet(ctx, d.Set); err != nil {
		return err
	}
	if r.ProposeRollout == nil {
		return nil
	}
	for _, st := range d.Rollouts {
		if err := r.ProposeRollout(ctx, st); err != nil {
			return fmt.Errorf("propose rollout status of %s revision %d (%s): %w", st.Service, st.Revision, st.Phase, err)
		}
		r.Log.Info("rollout "+string(st.Phase), "service", st.Service, "revision", st.Revision, "message", st.Message)
	}
	return nil
}

func (r *Runner) proposeSet(ctx context.Context, set ledger.PlacementSet) error {
	if Empty(set) {
		return nil
	}
	maxBytes := r.MaxSetBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxSetBytes
	}
	parts := SplitSet(set, maxBytes)
	for i, part := range parts {
		if err := r.Propose(ctx, part); err != nil {
			if len(parts) > 1 {
				return fmt.Errorf("propose placements (part %d of %d): %w", i+1, len(parts), err)
			}
			return fmt.Errorf("propose placements: %w", err)
		}
	}
	return nil
}

// SchedulerNode is a node of the ledger as the scheduler sees it.
func SchedulerNode(n state.Node, alive bool) scheduler.Node {
	return scheduler.Node{ID: n.ID, Name: n.Name, OS: n.OS, Arch: n.Arch, Labels: n.Labels,
		CPU: n.CPU, Memory: n.Memory, Alive: alive}
}

// NewDepotID names a new depot of service: the service name and 8 random hex digits.
func NewDepotID(service string) string {
	var b [4]byte
	rand.Read(b[:])
	return service + "-" + hex.EncodeToString(b[:])
}
