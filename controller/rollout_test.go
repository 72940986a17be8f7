package controller

import (
	"fmt"
	"testing"
	"time"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/scheduler"
	"qnet.dev/qnet/state"
)

// rolloutSim drives the reconciler the way the network does: each step commits the
// decided set and rollout reports to the state, and the test says which depots its
// nodes report ready, at a fake time.
type rolloutSim struct {
	t     *testing.T
	in    ReplicaInput
	now   time.Time
	specs map[uint64]*manifest.Service // the revisions of web
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func webSpec(replicas int, env string, ro *manifest.Rollout) *manifest.Service {
	return &manifest.Service{
		Metadata: manifest.Metadata{Name: "web"},
		Spec: manifest.Spec{
			Replicas:  replicas,
			Resources: manifest.Resources{CPU: 100, Memory: 64 * mi},
			Env:       map[string]string{"V": env},
			Rollout:   ro,
		},
	}
}

// newRolloutSim starts with revision 1 of web fully rolled out: replicas ready.
func newRolloutSim(t *testing.T, spec1 *manifest.Service) *rolloutSim {
	s := &rolloutSim{t: t, now: t0, specs: map[uint64]*manifest.Service{1: spec1}}
	s.in = ReplicaInput{
		Services: []state.Service{{Name: "web", Revision: 1, Spec: spec1,
			Rollout: &state.Rollout{Applied: 1, Revision: 1, Stable: 1, Phase: ledger.RolloutComplete, Since: t0}}},
		Nodes: []scheduler.Node{node("n1", 4000, 4096*mi), node("n2", 4000, 4096*mi), node("n3", 4000, 4096*mi)},
		NewID: counter(),
		Equivalent: func(_ string, a, b uint64) bool {
			return state.SameTemplate(s.specs[a], s.specs[b])
		},
	}
	for i := range spec1.Spec.Replicas {
		s.in.Placements = append(s.in.Placements, ready(placed(fmt.Sprintf("web-r1-%d", i), "web", 1, "n1", i), t0))
	}
	return s
}

func ready(p state.Placement, since time.Time) state.Placement {
	p.Status = &ledger.DepotStatus{ID: p.ID, State: ledger.DepotReady, Ready: true, Since: since}
	return p
}

// apply makes a new revision of web, as service.apply does.
func (s *rolloutSim) apply(spec *manifest.Service) {
	svc := &s.in.Services[0]
	rev := svc.Revision + 1
	s.specs[rev] = spec
	prev := svc.CurrentRollout()
	next := state.Rollout{Applied: rev, Revision: rev, Stable: prev.Stable, Phase: ledger.RolloutProgressing, Since: s.now}
	if prev.Phase == ledger.RolloutComplete {
		next.Stable = prev.Revision
	}
	if prev.Phase == ledger.RolloutPaused {
		next.Phase = ledger.RolloutPaused
	}
	svc.Revision, svc.Spec, svc.Rollout = rev, spec, &next
}

func (s *rolloutSim) rollout() state.Rollout { return s.in.Services[0].CurrentRollout() }

func (s *rolloutSim) setPhase(phase ledger.RolloutPhase) {
	ro := s.rollout()
	ro.Phase, ro.Since = phase, s.now
	s.in.Services[0].Rollout = &ro
}

// step reconciles once at the sim's time and commits the result; it returns it.
func (s *rolloutSim) step() Decision {
	s.in.Now = s.now
	d := Reconcile(s.in)
	s.in = applySet(s.in, d.Set)
	for _, st := range d.Rollouts {
		svc := &s.in.Services[0]
		ro := svc.CurrentRollout()
		ro.Phase, ro.Since, ro.Message = st.Phase, s.now, st.Message
		switch st.Phase {
		case ledger.RolloutComplete:
			ro.Stable = ro.Revision
		case ledger.RolloutReverted:
			ro.Failed, ro.Revision = ro.Revision, ro.Stable
			svc.Spec = s.specs[ro.Stable] // the runner runs the stable revision's spec
		}
		svc.Rollout = &ro
	}
	return d
}

// readyAll reports every placement of rev ready, as of the sim's time.
func (s *rolloutSim) readyAll(rev uint64) {
	for i, p := range s.in.Placements {
		if p.Revision == rev && (p.Status == nil || !p.Status.Ready) {
			s.in.Placements[i] = ready(p, s.now)
		}
	}
}

// count says how many placements of rev there are, and how many are ready.
func (s *rolloutSim) count(rev uint64) (all, readyN int) {
	for _, p := range s.in.Placements {
		if p.Revision == rev {
			all++
			if isReady(&p) {
				readyN++
			}
		}
	}
	return all, readyN
}

func (s *rolloutSim) readyTotal() int {
	n := 0
	for _, p := range s.in.Placements {
		if isReady(&p) {
			n++
		}
	}
	return n
}

func TestRolloutSurgeAndUnavailable(t *testing.T) {
	pct := func(v int) *manifest.IntOrPercent { return &manifest.IntOrPercent{Value: v, Percent: true} }
	num := func(v int) *manifest.IntOrPercent { return &manifest.IntOrPercent{Value: v} }
	for _, tt := range []struct {
		replicas       int
		surge, unavail *manifest.IntOrPercent
		steps          int // passes the rollout takes, each followed by the new depots turning ready
	}{
		{3, nil, nil, 4}, // the defaults: one at a time, none below
		{3, num(1), num(0), 4},
		{4, num(0), num(1), 4},
		{4, num(2), num(0), 3},
		{4, num(1), num(1), 3},
		{10, pct(25), pct(25), 3},
		{5, num(0), num(5), 1}, // all at once
		{4, pct(100), num(0), 2},
	} {
		name := fmt.Sprintf("%d replicas surge %v unavailable %v", tt.replicas, tt.surge, tt.unavail)
		t.Run(name, func(t *testing.T) {
			var ro *manifest.Rollout
			if tt.surge != nil {
				ro = &manifest.Rollout{MaxSurge: tt.surge, MaxUnavailable: tt.unavail}
			}
			s := newRolloutSim(t, webSpec(tt.replicas, "1", ro))
			s.apply(webSpec(tt.replicas, "2", ro))
			pol := s.in.Services[0].Spec.Spec.RolloutPolicy()
			surge, unavail := pol.Bounds(tt.replicas)
			steps := 0
			for ; steps < 50; steps++ {
				s.now = s.now.Add(time.Second)
				d := s.step()
				if len(d.Rollouts) == 1 && d.Rollouts[0].Phase == ledger.RolloutComplete {
					break
				}
				if len(d.Rollouts) != 0 {
					t.Fatalf("step %d: unexpected report %+v", steps, d.Rollouts)
				}
				if total := len(s.in.Placements); total > tt.replicas+surge {
					t.Fatalf("step %d: %d placements, more than %d replicas + %d surge", steps, total, tt.replicas, surge)
				}
				if r := s.readyTotal(); r < tt.replicas-unavail {
					t.Fatalf("step %d: %d ready, fewer than %d replicas - %d unavailable", steps, r, tt.replicas, unavail)
				}
				s.readyAll(2)
			}
			if old, _ := s.count(1); old != 0 {
				t.Fatalf("%d placements of revision 1 left", old)
			}
			if all, r := s.count(2); all != tt.replicas || r != tt.replicas {
				t.Fatalf("revision 2: %d placed, %d ready; want %d", all, r, tt.replicas)
			}
			if got := s.rollout(); got.Phase != ledger.RolloutComplete || got.Stable != 2 {
				t.Fatalf("rollout %+v, want complete with stable 2", got)
			}
			// The passes before the one that reports it complete: each adds what the surge
			// allows and removes what readiness allows.
			if steps != tt.steps {
				t.Errorf("took %d steps, want %d", steps, tt.steps)
			}
			if d := s.step(); !Empty(d.Set) || len(d.Rollouts) != 0 {
				t.Fatalf("after completion: %+v", d)
			}
		})
	}
}

func TestRolloutCanaryHold(t *testing.T) {
	ro := &manifest.Rollout{Canary: 1, CanaryWindow: manifest.Duration(30 * time.Second)}
	s := newRolloutSim(t, webSpec(3, "1", ro))
	s.apply(webSpec(3, "2", ro))
	s.step()
	if all, _ := s.count(2); all != 1 {
		t.Fatalf("%d new placements at the start, want the one canary", all)
	}
	s.now = s.now.Add(5 * time.Second)
	s.readyAll(2)
	// Held: the canary may take an old replica's place, but no second new one comes.
	for _, dt := range []time.Duration{time.Second, 10 * time.Second, 28 * time.Second} {
		s.now = t0.Add(5*time.Second + dt)
		s.step()
		if all, _ := s.count(2); all != 1 {
			t.Fatalf("%s into the window: %d new placements, want 1", dt, all)
		}
		if r := s.readyTotal(); r < 3 {
			t.Fatalf("%d ready during the hold, want 3", r)
		}
	}
	// A canary that restarts starts the window again (its ready time moves on).
	for i, p := range s.in.Placements {
		if p.Revision == 2 {
			s.in.Placements[i] = ready(p, t0.Add(34*time.Second))
		}
	}
	s.now = t0.Add(36 * time.Second) // the first window would have ended at 35s
	s.step()
	if all, _ := s.count(2); all != 1 {
		t.Fatalf("after a restart of the canary: %d new placements, want 1", all)
	}
	// A window held is not a lack of progress, however long the deadline counts from
	// the start: hold past the window and the rollout goes on.
	s.now = t0.Add(65 * time.Second)
	s.step()
	if all, _ := s.count(2); all < 2 {
		t.Fatalf("after the window: %d new placements, want more than the canary", all)
	}
	for i := 0; i < 10 && s.rollout().Phase != ledger.RolloutComplete; i++ {
		s.now = s.now.Add(time.Second)
		s.readyAll(2)
		s.step()
	}
	if got := s.rollout(); got.Phase != ledger.RolloutComplete {
		t.Fatalf("rollout %+v, want complete", got)
	}
}

func TestRolloutDeadline(t *testing.T) {
	for _, autoRevert := range []bool{false, true} {
		t.Run(fmt.Sprintf("autoRevert=%v", autoRevert), func(t *testing.T) {
			ro := &manifest.Rollout{ProgressDeadline: manifest.Duration(time.Minute), AutoRevert: autoRevert}
			s := newRolloutSim(t, webSpec(3, "1", ro))
			s.apply(webSpec(3, "broken", ro))
			s.step()
			if all, _ := s.count(2); all != 1 {
				t.Fatalf("%d new placements, want 1", all)
			}
			// The new depot never turns ready.
			s.now = t0.Add(59 * time.Second)
			if d := s.step(); len(d.Rollouts) != 0 || !Empty(d.Set) {
				t.Fatalf("before the deadline: %+v", d)
			}
			s.now = t0.Add(61 * time.Second)
			d := s.step()
			want := ledger.RolloutFailed
			if autoRevert {
				want = ledger.RolloutReverted
			}
			if len(d.Rollouts) != 1 || d.Rollouts[0].Phase != want || d.Rollouts[0].Revision != 2 {
				t.Fatalf("at the deadline: reports %+v, want %s of revision 2", d.Rollouts, want)
			}
			if !Empty(d.Set) {
				t.Fatalf("the pass that fails a rollout changes placements: %+v", d.Set)
			}
			if old, r := s.count(1); old != 3 || r != 3 {
				t.Fatalf("revision 1: %d placed, %d ready; want 3", old, r)
			}
			s.now = s.now.Add(time.Second)
			d = s.step()
			if !autoRevert {
				// Failed holds: nothing added or removed, nothing reported again.
				if !Empty(d.Set) || len(d.Rollouts) != 0 {
					t.Fatalf("a failed rollout changed: %+v", d)
				}
				return
			}
			// Reverted: the broken depot goes, the service runs revision 1 as before.
			if d.Set.Remove == nil || len(d.Set.Add) != 0 || len(d.Rollouts) != 0 {
				t.Fatalf("after the revert: %+v", d)
			}
			if all, _ := s.count(2); all != 0 {
				t.Fatalf("%d placements of the broken revision left", all)
			}
			if got := s.rollout(); got.Phase != ledger.RolloutReverted || got.Revision != 1 || got.Failed != 2 || got.Applied != 2 {
				t.Fatalf("rollout %+v", got)
			}
			if d := s.step(); !Empty(d.Set) || len(d.Rollouts) != 0 {
				t.Fatalf("not settled after the revert: %+v", d)
			}
		})
	}
}

func TestRolloutNoRevertWithoutStable(t *testing.T) {
	// A first revision that never turns ready has nothing to go back to: it fails.
	ro := &manifest.Rollout{ProgressDeadline: manifest.Duration(time.Minute), AutoRevert: true}
	svc := state.Service{Name: "web", Revision: 1, Spec: webSpec(2, "1", ro)}
	in := ReplicaInput{Services: []state.Service{svc}, Nodes: []scheduler.Node{node("n1", 4000, 4096*mi)}, NewID: counter(), Now: t0}
	in.Services[0].Rollout = &state.Rollout{Applied: 1, Revision: 1, Phase: ledger.RolloutProgressing, Since: t0}
	in = applySet(in, Reconcile(in).Set)
	in.Now = t0.Add(2 * time.Minute)
	d := Reconcile(in)
	if len(d.Rollouts) != 1 || d.Rollouts[0].Phase != ledger.RolloutFailed {
		t.Fatalf("reports %+v, want failed", d.Rollouts)
	}
}

func TestRolloutPause(t *testing.T) {
	s := newRolloutSim(t, webSpec(3, "1", nil))
	s.apply(webSpec(3, "2", nil))
	s.step()
	s.setPhase(ledger.RolloutPaused)
	s.readyAll(2)
	s.now = t0.Add(time.Hour) // far past any deadline: a paused rollout does not fail
	if d := s.step(); !Empty(d.Set) || len(d.Rollouts) != 0 {
		t.Fatalf("a paused rollout changed: %+v", d)
	}
	// A node dies while paused: its replicas come back in kind, nothing else moves.
	var onN1 []string
	for i, p := range s.in.Placements {
		if i%2 == 0 {
			s.in.Placements[i].Node = "n2"
		} else {
			s.in.Placements[i].Node = "n1"
			onN1 = append(onN1, p.ID)
		}
	}
	s.in.Nodes[0].Alive = false
	d := s.step()
	if len(d.Set.Remove) != len(onN1) || len(d.Set.Add) != len(onN1) {
		t.Fatalf("failover while paused: %+v (on n1: %v)", d.Set, onN1)
	}
	if a, _ := s.count(1); a != 3 {
		t.Fatalf("revision 1 has %d placements after failover, want 3", a)
	}
	if a, _ := s.count(2); a != 1 {
		t.Fatalf("revision 2 has %d placements after failover, want 1", a)
	}
	// Resumed, it goes on.
	s.setPhase(ledger.RolloutProgressing)
	s.readyAll(1)
	s.readyAll(2)
	for i := 0; i < 10 && s.rollout().Phase != ledger.RolloutComplete; i++ {
		s.now = s.now.Add(time.Second)
		s.step()
		s.readyAll(2)
	}
	if got := s.rollout(); got.Phase != ledger.RolloutComplete || got.Stable != 2 {
		t.Fatalf("rollout %+v, want complete", got)
	}
}

func TestRolloutNewestWins(t *testing.T) {
	s := newRolloutSim(t, webSpec(3, "1", nil))
	s.apply(webSpec(3, "2", nil))
	s.step()
	s.readyAll(2)
	s.step() // one of revision 1 gone, a second of revision 2 placed
	if a, _ := s.count(2); a != 2 {
		t.Fatalf("revision 2 has %d placements, want 2", a)
	}
	s.apply(webSpec(3, "3", nil))
	if got := s.rollout(); got.Stable != 1 || got.Revision != 3 {
		t.Fatalf("rollout %+v: the newest revision is the target, 1 stays the stable one", got)
	}
	d := s.step()
	// The revision 2 depot that was not ready yet goes at once; the ready ones stay
	// until revision 3 replaces them.
	if len(d.Set.Remove) != 1 {
		t.Fatalf("removed %v, want the one unready depot of revision 2", d.Set.Remove)
	}
	for i := 0; i < 20 && s.rollout().Phase != ledger.RolloutComplete; i++ {
		s.now = s.now.Add(time.Second)
		s.readyAll(3)
		s.step()
		if r := s.readyTotal(); r < 3 {
			t.Fatalf("%d ready, want at least 3", r)
		}
	}
	if a1, _ := s.count(1); a1 != 0 {
		t.Fatal("revision 1 left")
	}
	if a2, _ := s.count(2); a2 != 0 {
		t.Fatal("revision 2 left")
	}
	if got := s.rollout(); got.Phase != ledger.RolloutComplete || got.Stable != 3 {
		t.Fatalf("rollout %+v", got)
	}
}

func TestRolloutScaling(t *testing.T) {
	t.Run("a change of replicas alone replaces nothing", func(t *testing.T) {
		s := newRolloutSim(t, webSpec(2, "1", nil))
		s.apply(webSpec(4, "1", nil))
		d := s.step()
		if len(d.Set.Remove) != 0 || len(d.Set.Add) != 2 {
			t.Fatalf("scale up: %+v", d.Set)
		}
		s.readyAll(2)
		if d := s.step(); len(d.Rollouts) != 1 || d.Rollouts[0].Phase != ledger.RolloutComplete {
			t.Fatalf("scale up does not complete: %+v", d)
		}
		s.apply(webSpec(1, "1", nil))
		d = s.step()
		if len(d.Set.Remove) != 3 || len(d.Set.Add) != 0 {
			t.Fatalf("scale down: %+v", d.Set)
		}
	})
	t.Run("scaling during a rollout", func(t *testing.T) {
		s := newRolloutSim(t, webSpec(3, "1", nil))
		s.apply(webSpec(3, "2", nil))
		s.step()
		s.readyAll(2)
		s.apply(webSpec(5, "2", nil)) // revision 3: revision 2 with 5 replicas
		for i := 0; i < 20 && s.rollout().Phase != ledger.RolloutComplete; i++ {
			s.now = s.now.Add(time.Second)
			s.step()
			s.readyAll(2)
			s.readyAll(3)
			if r := s.readyTotal(); r < 3 {
				t.Fatalf("%d ready, want at least 3", r)
			}
			if n := len(s.in.Placements); n > 6 {
				t.Fatalf("%d placements, more than 5 + 1 surge", n)
			}
		}
		a1, _ := s.count(1)
		a2, _ := s.count(2)
		a3, _ := s.count(3)
		if a1 != 0 || a2+a3 != 5 || a2 != 1 {
			t.Fatalf("revisions 1, 2, 3 have %d, %d, %d placements; want 0 and 5 in all, the first of revision 2 kept", a1, a2, a3)
		}
	})
}
