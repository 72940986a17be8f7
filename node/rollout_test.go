package node_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/state"
)

// readyWatch records, after every block a node applies, how many depots of a service
// are placed and how many ready, and keeps the extremes.
type readyWatch struct {
	mu                 sync.Mutex
	minReady, maxTotal int
	blocks             int
}

func watchReady(t *testing.T, st *state.Store, service string) (*readyWatch, func()) {
	w := &readyWatch{minReady: 1 << 30}
	look := func() {
		ps, err := st.Placements(func(p *state.Placement) bool { return p.Service == service })
		if err != nil {
			t.Error(err)
			return
		}
		ready := 0
		for _, p := range ps {
			if p.Status != nil && p.Status.Ready {
				ready++
			}
		}
		w.mu.Lock()
		w.minReady, w.maxTotal = min(w.minReady, ready), max(w.maxTotal, len(ps))
		w.blocks++
		w.mu.Unlock()
	}
	look()
	// Subscribers are called as each block is applied, so no state between blocks is
	// missed; they must not block, and reading the store from one does not.
	cancel := st.Subscribe(func([]state.Event) { look() })
	return w, cancel
}

func helloRollout(t *testing.T, env, command, rollout string) *manifest.Service {
	t.Helper()
	svc := helloService(t, 3, "  env: {V: \""+env+"\"}\n  rollout: "+rollout+"\n")[0]
	if command != "" {
		svc.Spec.Depot.Exec = &manifest.ExecDepot{Command: command}
	}
	return svc
}

// TestRollingUpdate rolls a service of three replicas over to a new revision, keeping
// every replica ready throughout (maxUnavailable 0), then applies a revision whose
// depots exit at once: the rollout fails its deadline and goes back to the good
// revision. Last, undo returns to revision 1.
func TestRollingUpdate(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const good = "{maxSurge: 1, maxUnavailable: 0, progressDeadline: 30s}"
	apply := func(svc *manifest.Service) uint64 {
		t.Helper()
		res, err := n.Client.Apply(ctx, []*manifest.Service{svc})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Revision
	}
	if err := n.Client.WaitRollout(ctx, "hello", apply(helloRollout(t, "1", "", good)), nil); err != nil {
		t.Fatalf("revision 1: %v", err)
	}

	// A client hits the service through the node's proxy all along, a new connection
	// per request: not one request may fail through the three rollouts.
	loop := startClientLoop(t, n)
	defer loop.stop()

	w, stop := watchReady(t, n.Store(), "hello")
	rev2 := apply(helloRollout(t, "2", "", good))
	if rev2 != 2 {
		t.Fatalf("revision %d, want 2", rev2)
	}
	if err := n.Client.WaitRollout(ctx, "hello", rev2, nil); err != nil {
		t.Fatalf("revision 2: %v", err)
	}
	stop()
	w.mu.Lock()
	if w.minReady < 3 || w.maxTotal > 4 || w.blocks < 4 {
		t.Errorf("during the rollout: at least %d ready (want 3), at most %d depots (want 4), over %d blocks", w.minReady, w.maxTotal, w.blocks)
	}
	w.mu.Unlock()
	d, err := n.Client.Service(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	for _, dp := range d.Depots {
		if dp.Revision != 2 || !dp.Status.Ready {
			t.Errorf("after the rollout: depot %s of revision %d, ready %v", dp.ID, dp.Revision, dp.Status.Ready)
		}
	}
	if d.Rollout.Phase != ledger.RolloutComplete || d.Rollout.Stable != 2 || len(d.Depots) != 3 {
		t.Fatalf("after the rollout: %+v, %d depots", d.Rollout, len(d.Depots))
	}

	// A revision that exits at once: it never turns ready, the deadline passes, and
	// autoRevert takes the service back to revision 2. The good replicas stay ready.
	w, stop = watchReady(t, n.Store(), "hello")
	rev3 := apply(helloRollout(t, "3", "false", "{progressDeadline: 2s, autoRevert: true}"))
	err = n.Client.WaitRollout(ctx, "hello", rev3, nil)
	stop()
	if !errors.Is(err, client.ErrRolloutReverted) {
		t.Fatalf("broken revision: %v, want it reverted", err)
	}
	w.mu.Lock()
	if w.minReady < 3 {
		t.Errorf("during the broken rollout only %d ready", w.minReady)
	}
	w.mu.Unlock()
	qnettest.WaitFor(t, 30*time.Second, "revision 2 alone again", func() bool {
		d, err = n.Client.Service(ctx, "hello")
		if err != nil || len(d.Depots) != 3 || d.Ready != 3 {
			return false
		}
		for _, dp := range d.Depots {
			if dp.Revision != 2 {
				return false
			}
		}
		return true
	})
	if ro := d.Rollout; ro.Phase != ledger.RolloutReverted || ro.Revision != 2 || ro.Failed != 3 || d.Revision != 3 {
		t.Fatalf("after the revert: newest %d, %+v", d.Revision, ro)
	}

	// Undo to revision 1: its spec again, as revision 4, rolled out.
	res, from, err := n.Client.Undo(ctx, "hello", 1)
	if err != nil || from != 1 || res.Revision != 4 {
		t.Fatalf("undo: %+v from %d: %v", res, from, err)
	}
	if err := n.Client.WaitRollout(ctx, "hello", 4, nil); err != nil {
		t.Fatalf("undo's rollout: %v", err)
	}
	rev, ok, err := n.Store().Revision("hello", 4)
	if !ok || err != nil || rev.Cause != "undo to revision 1" || rev.Spec.Spec.Env["V"] != "1" {
		t.Fatalf("revision 4: %+v %v", rev, err)
	}
	if _, _, err := n.Client.Undo(ctx, "hello", 9); !errors.Is(err, client.ErrNoRevision) {
		t.Fatalf("undo to a revision that does not exist: %v", err)
	}
	ok2, failed := loop.stop()
	if len(failed) > 0 || ok2 < 50 {
		t.Fatalf("through the proxy during the rollouts: %d requests answered, %d failed: %v", ok2, len(failed), failed)
	}
	t.Logf("%d requests through the proxy during the rollouts, none failed", ok2)
}

// clientLoop sends requests to a service's stable address until stopped.
type clientLoop struct {
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     int
	failed []string
}

func startClientLoop(t *testing.T, n *qnettest.Node) *clientLoop {
	t.Helper()
	addr := proxyAddr(t, n, "hello", "http")
	l := &clientLoop{done: make(chan struct{})}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	l.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond) // the client's pace, not a wait for an event
		defer tick.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
			resp, err := hc.Get("http://" + addr + "/")
			l.mu.Lock()
			switch {
			case err != nil:
				l.failed = append(l.failed, err.Error())
			case resp.StatusCode != 200:
				l.failed = append(l.failed, resp.Status)
			default:
				l.ok++
			}
			l.mu.Unlock()
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
	return l
}

func (l *clientLoop) stop() (int, []string) {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failed
}
