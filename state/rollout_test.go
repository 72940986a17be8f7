package state

import (
	"errors"
	"strings"
	"testing"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

func TestRolloutRecord(t *testing.T) {
	f := newFixture(t)
	var events []Event
	cancel := f.st.Subscribe(func(evs []Event) { events = append(events, evs...) })
	defer cancel()
	svcApply := func(replicas int, cause string) {
		t.Helper()
		if res := f.apply(f.tx(f.op, ledger.TxServiceApply, ledger.ServiceApply{Service: hello(replicas), Cause: cause})); res.Results[0] != "" {
			t.Fatalf("apply: %s", res.Results[0])
		}
	}
	rollout := func() Rollout {
		t.Helper()
		svc, ok, err := f.st.Service("hello")
		if !ok || err != nil {
			t.Fatalf("service: %v", err)
		}
		return svc.CurrentRollout()
	}
	status := func(rev uint64, phase ledger.RolloutPhase) string {
		t.Helper()
		st := ledger.RolloutStatus{Service: "hello", Revision: rev, Phase: phase, Message: "m", At: f.now}
		tx := f.tx(f.node, ledger.TxRolloutStatus, st)
		door := f.st.CheckTx(tx, f.now)
		res := f.apply(tx).Results[0]
		if (door == nil) != (res == "") {
			t.Fatalf("the door says %v, the state machine %q", door, res)
		}
		return res
	}
	control := func(typ ledger.TxType) string {
		t.Helper()
		return f.apply(f.tx(f.op, typ, ledger.RolloutControl{Service: "hello"})).Results[0]
	}

	svcApply(1, "first")
	if ro := rollout(); ro.Phase != ledger.RolloutProgressing || ro.Revision != 1 || ro.Stable != 0 {
		t.Fatalf("new service: %+v", ro)
	}
	if r, _, _ := f.st.Revision("hello", 1); r.Cause != "first" {
		t.Fatalf("revision cause %q", r.Cause)
	}
	if msg := status(1, ledger.RolloutReverted); !strings.Contains(msg, "no earlier good revision") {
		t.Fatalf("revert of a first revision: %q", msg)
	}
	if msg := status(1, ledger.RolloutComplete); msg != "" {
		t.Fatal(msg)
	}
	if ro := rollout(); ro.Phase != ledger.RolloutComplete || ro.Stable != 1 {
		t.Fatalf("complete: %+v", ro)
	}
	// Only validators decide; an operator's status is refused at the door.
	tx := f.tx(f.op, ledger.TxRolloutStatus, ledger.RolloutStatus{Service: "hello", Revision: 1, Phase: ledger.RolloutComplete})
	if err := f.st.CheckTx(tx, f.now); !errors.Is(err, ledger.ErrNotAllowed) {
		t.Fatalf("operator-signed status: %v", err)
	}

	svcApply(2, "")
	if ro := rollout(); ro.Phase != ledger.RolloutProgressing || ro.Revision != 2 || ro.Stable != 1 {
		t.Fatalf("second revision: %+v", ro)
	}
	// Newest wins: revision 3 while 2 rolls out keeps 1 as the stable revision, and a
	// report about 2 is stale.
	svcApply(3, "")
	if ro := rollout(); ro.Revision != 3 || ro.Stable != 1 || !strings.Contains(ro.Message, "revision 3 replaces revision 2") {
		t.Fatalf("third revision: %+v", ro)
	}
	if msg := status(2, ledger.RolloutFailed); !strings.Contains(msg, "stale rollout status") {
		t.Fatalf("stale report: %q", msg)
	}

	// Pause and resume.
	if msg := control(ledger.TxRolloutResume); !strings.Contains(msg, "not paused") {
		t.Fatalf("resume of a progressing rollout: %q", msg)
	}
	if msg := control(ledger.TxRolloutPause); msg != "" {
		t.Fatal(msg)
	}
	if ro := rollout(); ro.Phase != ledger.RolloutPaused || !strings.Contains(ro.Message, "paused by alice") {
		t.Fatalf("paused: %+v", ro)
	}
	if msg := status(3, ledger.RolloutComplete); !strings.Contains(msg, "is paused, not progressing") {
		t.Fatalf("complete while paused: %q", msg)
	}
	// A new revision while paused stays paused.
	svcApply(4, "")
	if ro := rollout(); ro.Phase != ledger.RolloutPaused || ro.Revision != 4 {
		t.Fatalf("apply while paused: %+v", ro)
	}
	if msg := control(ledger.TxRolloutResume); msg != "" {
		t.Fatal(msg)
	}
	// Revert to the stable revision.
	if msg := status(4, ledger.RolloutReverted); msg != "" {
		t.Fatal(msg)
	}
	ro := rollout()
	if ro.Phase != ledger.RolloutReverted || ro.Revision != 1 || ro.Failed != 4 || ro.Applied != 4 {
		t.Fatalf("reverted: %+v", ro)
	}
	svc, _, _ := f.st.Service("hello")
	if svc.Revision != 4 || svc.RunRevision() != 1 {
		t.Fatalf("service runs revision %d of %d, want 1 of 4", svc.RunRevision(), svc.Revision)
	}
	if msg := control(ledger.TxRolloutPause); !strings.Contains(msg, "nothing to pause") {
		t.Fatalf("pause of a reverted rollout: %q", msg)
	}
	// The next apply rolls out from the stable revision.
	svcApply(5, "")
	if ro := rollout(); ro.Stable != 1 || ro.Revision != 5 || ro.Phase != ledger.RolloutProgressing {
		t.Fatalf("apply after a revert: %+v", ro)
	}
	var kinds []string
	for _, e := range events {
		if strings.HasPrefix(e.Kind, "rollout.") {
			kinds = append(kinds, e.Kind)
		}
	}
	if got := strings.Join(kinds, " "); got != "rollout.complete rollout.superseded rollout.paused rollout.superseded rollout.progressing rollout.reverted" {
		t.Fatalf("rollout events: %s", got)
	}
}

func TestCurrentRolloutWithoutRecord(t *testing.T) {
	// A service stored before rollouts were recorded runs what it has.
	old := Service{Name: "web", Revision: 3}
	if ro := old.CurrentRollout(); ro.Phase != ledger.RolloutComplete || ro.Revision != 3 || ro.Stable != 3 {
		t.Fatalf("%+v", ro)
	}
	// A revision made without a record (by another path than service.apply) begins
	// a rollout from the record's stable revision.
	svc := Service{Name: "web", Revision: 4, Rollout: &Rollout{Applied: 3, Revision: 3, Stable: 3, Phase: ledger.RolloutComplete}}
	if ro := svc.CurrentRollout(); ro.Phase != ledger.RolloutProgressing || ro.Revision != 4 || ro.Stable != 3 {
		t.Fatalf("%+v", ro)
	}
}

func TestSameTemplate(t *testing.T) {
	a, b := hello(2), hello(7)
	b.Spec.Rollout = &manifest.Rollout{Canary: 1}
	if !SameTemplate(a, b) {
		t.Error("replicas and rollout make a different template")
	}
	c := hello(2)
	c.Spec.Env = map[string]string{"V": "2"}
	if SameTemplate(a, c) {
		t.Error("env does not make a different template")
	}
	if SameTemplate(a, nil) || !SameTemplate(nil, nil) {
		t.Error("nil specs")
	}
	if !Equivalent(Revision{Service: "x", Spec: a}, Revision{Service: "x", Spec: b}) || Equivalent(Revision{Service: "x", Spec: a}, Revision{Service: "y", Spec: a}) {
		t.Error("Equivalent")
	}
}
