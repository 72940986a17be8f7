package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// TestInputs checks that a depot whose manifest names secrets or configs gets them
// before every start (the hook's env reaches the driver), that a failure to get them
// keeps the driver from starting it and says why, that a depot naming none never calls
// the hook, and that removal frees what the hook made.
func TestInputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drv := crashingDriver(func(n int) time.Duration {
			if n == 0 {
				return 10 * time.Millisecond
			}
			return time.Hour
		})
		a := testAgent(t, drv)
		var (
			mu      sync.Mutex
			calls   int
			envs    [][]string
			removed []string
			fail    error
		)
		a.cfg.Inputs = func(ctx context.Context, p state.Placement, rev state.Revision, s *driver.Spec) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if fail != nil {
				return fail
			}
			if p.ID != "web-1a2b3c4d" || rev.Spec.Spec.Secrets[0].Name != "db" {
				t.Errorf("Inputs got placement %s, secrets %v", p.ID, rev.Spec.Spec.Secrets)
			}
			s.Env = append(s.Env, "DB_PASSWORD=from-hook")
			envs = append(envs, slices.Clone(s.Env))
			return nil
		}
		a.cfg.Removed = func(id string) {
			mu.Lock()
			removed = append(removed, id)
			mu.Unlock()
		}
		spec := restartSpec(manifest.RestartAlways)
		spec.Secrets = []manifest.SecretRef{{Name: "db", Env: "DB_PASSWORD"}}
		d := testDepot(a, spec)
		d.start()
		<-drv.started
		<-drv.started
		synctest.Wait()
		mu.Lock()
		if calls != 2 || len(envs) != 2 || !slices.Contains(envs[1], "DB_PASSWORD=from-hook") {
			t.Errorf("Inputs called %d times, envs %v; want once per start with the hook's variable", calls, envs)
		}
		mu.Unlock()
		d.stop(errRemoved)
		<-d.done
		if !slices.Equal(removed, []string{"web-1a2b3c4d"}) {
			t.Errorf("Removed told %v, want the removed depot", removed)
		}

		// A hook that fails keeps the depot from starting and says why.
		fail = errors.New("secret db: release not authorized")
		drv2 := crashingDriver(func(int) time.Duration { return time.Hour })
		a2 := testAgent(t, drv2)
		a2.cfg.Inputs, a2.cfg.Removed = a.cfg.Inputs, a.cfg.Removed
		d2 := testDepot(a2, spec)
		d2.start()
		waitStatus(a2, d2, func(st ledger.DepotStatus) bool { return strings.Contains(st.Reason, "release not authorized") })
		d2.stop(errRemoved)
		<-d2.done
		if len(drv2.starts) != 0 {
			t.Errorf("the driver started a depot whose secrets could not be had")
		}

		// A depot that names none does not call the hook.
		mu.Lock()
		calls = 0
		mu.Unlock()
		drv3 := crashingDriver(func(int) time.Duration { return time.Hour })
		a3 := testAgent(t, drv3)
		a3.cfg.Inputs = a.cfg.Inputs
		d3 := testDepot(a3, restartSpec(manifest.RestartAlways))
		d3.start()
		<-drv3.started
		d3.stop(errRemoved)
		<-d3.done
		if calls != 0 {
			t.Errorf("Inputs called %d times for a depot that names no secrets or configs", calls)
		}
	})
}
