package client

import (
	"errors"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

func mkDepot(id string, rev uint64, state ledger.DepotState, restarts int, reason string) api.Depot {
	return api.Depot{ID: id, Revision: rev, Status: ledger.DepotStatus{ID: id, State: state, Restarts: restarts, Reason: reason}}
}

func view(rev uint64, unsched string, depots ...api.Depot) *api.ServiceDetail {
	spec := &manifest.Service{Spec: manifest.Spec{Restart: manifest.Restart{Policy: manifest.RestartOnFailure}}}
	return &api.ServiceDetail{Service: api.Service{Name: "web", Revision: rev, Desired: len(depots), Unschedulable: unsched, Depots: depots, Spec: spec}}
}

// TestReadyWatch feeds views to the watch WaitReady keeps and checks when it gives up.
func TestReadyWatch(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type step struct {
		at   time.Duration
		view *api.ServiceDetail
		err  error  // nil: keep waiting
		msg  string // in the error
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"starting depots are waited for", []step{
			{0, view(1, "", mkDepot("a", 1, ledger.DepotPending, 0, ""), mkDepot("b", 1, ledger.DepotStarting, 0, "")), nil, ""},
			{time.Hour, view(1, "", mkDepot("a", 1, ledger.DepotRunning, 0, ""), mkDepot("b", 1, ledger.DepotFailing, 2, "exited with code 1; restarting in 200ms")), nil, ""},
		}},
		{"unschedulable across two views a tick apart", []step{
			{0, view(1, "1 of 1 replicas unplaced: 0/1 nodes fit: 1 insufficient memory"), nil, ""},
			{readyTick / 2, view(1, "1 of 1 replicas unplaced: 0/1 nodes fit: 1 insufficient memory"), nil, ""},
			{readyTick, view(1, "1 of 1 replicas unplaced: 0/1 nodes fit: 1 insufficient memory"), ErrUnschedulable, "replicas cannot be placed: 1 of 1 replicas unplaced: 0/1 nodes fit: 1 insufficient memory"},
		}},
		{"a reason that changes starts over", []step{
			{0, view(1, "2 of 3 replicas unplaced: x"), nil, ""},
			{readyTick, view(1, "1 of 3 replicas unplaced: x"), nil, ""},
			{2 * readyTick, view(1, "1 of 3 replicas unplaced: x"), ErrUnschedulable, "1 of 3 replicas unplaced"},
		}},
		{"a reason left from the last revision does not count for the new one", []step{
			{0, view(1, "old reason"), nil, ""},
			{readyTick, view(2, "old reason"), nil, ""},
			{readyTick + readyTick/2, view(2, ""), nil, ""},
			{3 * readyTick, view(2, "", mkDepot("a", 2, ledger.DepotStarting, 0, "")), nil, ""},
		}},
		{"a reason that goes away is forgotten", []step{
			{0, view(1, "x"), nil, ""},
			{readyTick / 2, view(1, ""), nil, ""},
			{readyTick, view(1, "x"), nil, ""},
		}},
		{"every depot failing after enough restarts", []step{
			{0, view(3, "",
				mkDepot("a", 3, ledger.DepotFailing, 3, "start failed: command not found: nope; retrying in 100ms"),
				mkDepot("b", 3, ledger.DepotExited, 0, "exited with code 2"),
				mkDepot("old", 2, ledger.DepotReady, 0, "")), // of another revision: not counted
				ErrDepotsFailing, "every depot of the current revision is failing or has exited (revision 3):\n" +
					"  depot a is failing after 3 restarts: start failed: command not found: nope; retrying in 100ms\n" +
					"  depot b is not restarted (restart policy on-failure): exited with code 2"},
		}},
		{"one depot that may still come up keeps the wait", []step{
			{0, view(1, "", mkDepot("a", 1, ledger.DepotFailing, 5, "x"), mkDepot("b", 1, ledger.DepotFailing, 2, "x")), nil, ""},
			{0, view(1, "", mkDepot("a", 1, ledger.DepotFailing, 5, "x"), mkDepot("b", 1, ledger.DepotReady, 2, "")), nil, ""},
			{0, view(1, "", mkDepot("a", 1, ledger.DepotExited, 0, "x"), mkDepot("b", 1, ledger.DepotRunning, 0, "")), nil, ""},
		}},
		{"only depots of other revisions", []step{
			{0, view(2, "", mkDepot("a", 1, ledger.DepotFailing, 9, "x")), nil, ""},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w readyWatch
			for i, s := range c.steps {
				err := w.check(s.view, t0.Add(s.at))
				if s.err == nil {
					if err != nil {
						t.Fatalf("step %d: %v, want to keep waiting", i, err)
					}
					continue
				}
				if !errors.Is(err, s.err) || !strings.Contains(err.Error(), s.msg) {
					t.Fatalf("step %d: error %v, want %v saying %q", i, err, s.err, s.msg)
				}
			}
		})
	}
}
