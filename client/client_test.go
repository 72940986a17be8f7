package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
)

func TestMain(m *testing.M) { qnettest.Main(m) }

// service decodes a manifest of one service with the given depot, memory and extra spec
// lines; restarts are quick unless extra says otherwise.
func service(t *testing.T, name, depot, memory, extra string) *manifest.Service {
	t.Helper()
	if !strings.Contains(extra, "restart:") {
		extra += "  restart: {backoff: 50ms, maxBackoff: 100ms}\n"
	}
	svcs, err := manifest.Decode(name+".yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: %s}
  resources: {cpu: 10m, memory: %s}
%s`, name, depot, memory, extra))
	if err != nil {
		t.Fatal(err)
	}
	return svcs[0]
}

func apply(t *testing.T, n *qnettest.Node, svcs ...*manifest.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := n.Client.Apply(ctx, svcs); err != nil {
		t.Fatal(err)
	}
}

// waitReady runs WaitReady with a deadline and returns its error and how long it took.
func waitReady(t *testing.T, n *qnettest.Node, name string, timeout time.Duration) (error, time.Duration, []*api.ServiceDetail) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var views []*api.ServiceDetail
	start := time.Now()
	err := n.Client.WaitReady(ctx, name, func(d *api.ServiceDetail) { views = append(views, d) })
	return err, time.Since(start), views
}

// TestWaitReady runs WaitReady against a real node on services that become ready, that
// cannot be placed, whose depots fail or exit, and that never get ready.
func TestWaitReady(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	apply(t, n,
		service(t, "sleeper", `{command: sh, args: [-c, "exec sleep 600"]}`, "16Mi", "  replicas: 2\n"),
		service(t, "huge", `{command: sh, args: [-c, "exec sleep 600"]}`, "8Ti", ""),
		service(t, "missing", `{command: no-such-program-qnet}`, "16Mi", "  replicas: 2\n"),
		// Its readiness probe never passes, so it is never ready, even for the moment
		// it runs.
		service(t, "quitter", `{command: sh, args: [-c, "echo bye >&2; exit 3"]}`, "16Mi",
			"  ports: [{name: http, port: 80}]\n  health: {readiness: {tcp: http, interval: 1h}}\n  restart: {policy: never}\n"),
		service(t, "unready", `{command: sh, args: [-c, "exec sleep 600"]}`, "16Mi",
			"  ports: [{name: http, port: 80}]\n  health: {readiness: {tcp: http, interval: 100ms}}\n"),
	)

	t.Run("ready", func(t *testing.T) {
		t.Parallel()
		err, _, views := waitReady(t, n, "sleeper", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		last := views[len(views)-1]
		if last.Ready != 2 || last.Desired != 2 || len(last.Depots) != 2 {
			t.Fatalf("last view: %+v", last.Service)
		}
	})
	t.Run("unschedulable", func(t *testing.T) {
		t.Parallel()
		err, took, _ := waitReady(t, n, "huge", 30*time.Second)
		if !errors.Is(err, client.ErrUnschedulable) || !strings.Contains(err.Error(), "service huge will not become ready: replicas cannot be placed: 1 of 1 replicas unplaced: 0/1 nodes fit: 1 insufficient memory") {
			t.Fatalf("err = %v", err)
		}
		if took > 10*time.Second {
			t.Fatalf("took %v to see the service cannot be placed", took)
		}
	})
	t.Run("command not found", func(t *testing.T) {
		t.Parallel()
		err, _, _ := waitReady(t, n, "missing", 30*time.Second)
		if !errors.Is(err, client.ErrDepotsFailing) {
			t.Fatalf("err = %v", err)
		}
		// Both depots are named with their reason.
		msg := err.Error()
		if strings.Count(msg, "no-such-program-qnet") != 2 || strings.Count(msg, "is failing after") != 2 || !strings.Contains(msg, "not found") {
			t.Fatalf("error does not give each depot's reason:\n%v", err)
		}
	})
	t.Run("exits for good", func(t *testing.T) {
		t.Parallel()
		err, _, _ := waitReady(t, n, "quitter", 30*time.Second)
		if !errors.Is(err, client.ErrDepotsFailing) || !strings.Contains(err.Error(), "is not restarted (restart policy never): exited with code 3") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("never ready", func(t *testing.T) {
		t.Parallel()
		err, _, views := waitReady(t, n, "unready", 3*time.Second)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "service unready: 0/1 replicas ready") {
			t.Fatalf("err = %v", err)
		}
		if len(views) < 2 {
			t.Fatalf("progress called %d times in 3s", len(views))
		}
	})
	t.Run("unknown service", func(t *testing.T) {
		t.Parallel()
		if err, _, _ := waitReady(t, n, "nope", 10*time.Second); !client.IsNotFound(err) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestWaitReadyAfterFix applies a service that cannot be placed, then a revision that
// fits, and waits at once: the reason left from the first revision must not end the
// wait.
func TestWaitReadyAfterFix(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	apply(t, n, service(t, "web", `{command: sh, args: [-c, "exec sleep 600"]}`, "8Ti", ""))
	qnettest.WaitFor(t, 20*time.Second, "web to be unschedulable", func() bool {
		d, err := n.Client.Service(t.Context(), "web")
		return err == nil && d.Unschedulable != ""
	})
	apply(t, n, service(t, "web", `{command: sh, args: [-c, "exec sleep 600"]}`, "16Mi", ""))
	if err, _, _ := waitReady(t, n, "web", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestDepot(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	apply(t, n, service(t, "one", `{command: sh, args: [-c, "exec sleep 600"]}`, "16Mi", "  ports: [{name: http, port: 80}]\n"))
	if err, _, _ := waitReady(t, n, "one", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	ds, err := n.Client.Depots(t.Context(), "one")
	if err != nil || len(ds) != 1 {
		t.Fatalf("depots: %v %+v", err, ds)
	}
	d, err := n.Client.Depot(t.Context(), ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != ds[0].ID || d.Service != "one" || d.Revision != 1 || d.Node != n.ID() || d.NodeName != "node1" ||
		d.Status.State != ledger.DepotReady || d.Status.PID == 0 || d.Addrs["http"] == "" {
		t.Fatalf("depot: %+v", d)
	}
	_, err = n.Client.Depot(t.Context(), "one-nope")
	var ae *client.APIError
	if !client.IsNotFound(err) || !errors.As(err, &ae) || !strings.Contains(ae.Message, `depot "one-nope" not found`) {
		t.Fatalf("unknown depot: %v", err)
	}
	// An ID is one path segment, whatever it holds.
	if _, err := n.Client.Depot(t.Context(), "../services/one"); !client.IsNotFound(err) {
		t.Fatalf("depot ID with a slash: %v", err)
	}
}
