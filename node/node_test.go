package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/examples"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
)

func TestMain(m *testing.M) { qnettest.Main(m) }

func decode(t *testing.T, yaml string) []*manifest.Service {
	t.Helper()
	svcs, err := manifest.Decode("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return svcs
}

func helloService(t *testing.T, replicas int, extra string) []*manifest.Service {
	return decode(t, fmt.Sprintf(`apiVersion: qnet/v1
kind: Service
metadata: {name: hello}
spec:
  depot: {exec: {command: qnet, args: [example-hello]}}
  replicas: %d
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, port: 8080}]
  health:
    liveness: {http: /healthz, interval: 200ms, failureThreshold: 2}
    readiness: {http: /ready, interval: 100ms}
  restart: {backoff: 50ms, maxBackoff: 1s}
%s`, replicas, extra))
}

func waitReady(t *testing.T, n *qnettest.Node, name string) *api.ServiceDetail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Client.WaitReady(ctx, name, nil); err != nil {
		d, _ := n.Client.Service(context.Background(), name)
		t.Fatalf("wait ready: %v\n%+v", err, d)
	}
	d, err := n.Client.Service(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// TestHelloEndToEnd applies the example service and checks every replica answers, then
// deletes it and checks nothing is left running.
func TestHelloEndToEnd(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	ctx := context.Background()
	svcs, err := manifest.Decode("hello.yaml", examples.Hello)
	if err != nil {
		t.Fatal(err)
	}
	res, err := n.Client.Apply(ctx, svcs)
	if err != nil || res[0].Action != "created" || res[0].Revision != 1 {
		t.Fatalf("apply: %v %+v", err, res)
	}
	d := waitReady(t, n, "hello")
	if d.Ready != 3 || len(d.Depots) != 3 {
		t.Fatalf("want 3 ready depots, got %+v", d.Service)
	}
	var pids []int
	for _, dep := range d.Depots {
		code, body := get(t, dep.Addrs["http"], "/")
		if code != 200 || !strings.Contains(body, "hello from "+dep.ID) {
			t.Fatalf("depot %s at %s answered %d %q", dep.ID, dep.Addrs["http"], code, body)
		}
		if !strings.Contains(dep.Status.Limits, "cgroup") && !strings.Contains(dep.Status.Limits, "not enforced") {
			t.Fatalf("limits not reported: %q", dep.Status.Limits)
		}
		pids = append(pids, dep.Status.PID)
	}
	// Applying the same manifest again changes nothing.
	svcs, _ = manifest.Decode("hello.yaml", examples.Hello)
	if res, err := n.Client.Apply(ctx, svcs); err != nil || res[0].Action != "unchanged" {
		t.Fatalf("re-apply: %v %+v", err, res)
	}
	// Logs of the service come from every replica.
	var logs strings.Builder
	if err := n.Client.Logs(ctx, "hello", client.LogOptions{Tail: -1}, &logs); err != nil {
		t.Fatal(err)
	}
	for _, dep := range d.Depots {
		if !strings.Contains(logs.String(), "["+dep.ID+"]") {
			t.Fatalf("logs lack depot %s:\n%s", dep.ID, logs.String())
		}
	}

	if _, err := n.Client.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	qnettest.WaitFor(t, 20*time.Second, "all hello processes to exit", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	if _, err := n.Client.Delete(ctx, "hello"); err == nil || !strings.Contains(err.Error(), `service "hello"`) {
		t.Fatalf("deleting an unknown service: %v", err)
	}
	if _, err := n.Client.Service(ctx, "nope"); !client.IsNotFound(err) {
		t.Fatalf("unknown service: %v", err)
	}
}

// depotOf returns the first depot of a service, or a pending one while none is placed.
func depotOf(t *testing.T, n *qnettest.Node, service string) api.Depot {
	t.Helper()
	ds, err := n.Client.Depots(context.Background(), service)
	if err != nil {
		t.Fatalf("depots of %s: %v", service, err)
	}
	if len(ds) == 0 {
		return api.Depot{Status: ledger.DepotStatus{State: ledger.DepotPending}}
	}
	return ds[0]
}

// TestKilledDepotComesBack kills a replica with SIGKILL and waits for the agent to
// restart it, counting the restart.
func TestKilledDepotComesBack(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	if _, err := n.Client.Apply(context.Background(), helloService(t, 1, "")); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n, "hello")
	before := depotOf(t, n, "hello")
	if err := syscall.Kill(before.Status.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	qnettest.WaitFor(t, 20*time.Second, "the killed depot to be ready again", func() bool {
		d := depotOf(t, n, "hello")
		// At least one restart: on a loaded machine the new process may miss a probe
		// under its 50m CPU quota and be restarted once more.
		return d.Status.Ready && d.Status.PID != before.Status.PID && d.Status.Restarts >= before.Status.Restarts+1
	})
	after := depotOf(t, n, "hello")
	if after.ID != before.ID || !alive(after.Status.PID) {
		t.Fatalf("after kill: %+v", after)
	}
}

// TestFailingLivenessIsReplaced serves a replica whose liveness probe fails (the probe
// asks for a path that answers 404): the agent kills and restarts it.
func TestFailingLivenessIsReplaced(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	svcs := decode(t, `apiVersion: qnet/v1
kind: Service
metadata: {name: sick}
spec:
  depot: {exec: {command: qnet, args: [example-hello]}}
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, port: 8080}]
  health:
    liveness: {http: /no-such-path, interval: 100ms, failureThreshold: 2}
  restart: {backoff: 50ms, maxBackoff: 200ms}
`)
	if _, err := n.Client.Apply(context.Background(), svcs); err != nil {
		t.Fatal(err)
	}
	qnettest.WaitFor(t, 20*time.Second, "the unhealthy depot to be restarted twice", func() bool {
		d := depotOf(t, n, "sick")
		return d.Status.Restarts >= 2
	})
	d := depotOf(t, n, "sick")
	if !strings.Contains(d.Status.Reason, "liveness probe failed") && d.Status.State != ledger.DepotRunning && d.Status.State != ledger.DepotReady {
		t.Fatalf("status of the unhealthy depot: %+v", d.Status)
	}
}

// TestOnlyReadyCount holds readiness back with a warm-up and checks the service counts
// the replica as running but not ready until then.
func TestOnlyReadyCount(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	svcs := helloService(t, 1, "  env: {HELLO_WARMUP: 1500ms}\n")
	if _, err := n.Client.Apply(context.Background(), svcs); err != nil {
		t.Fatal(err)
	}
	qnettest.WaitFor(t, 20*time.Second, "the depot to run", func() bool {
		return depotOf(t, n, "hello").Status.State == ledger.DepotRunning
	})
	d, _ := n.Client.Service(context.Background(), "hello")
	if d.Ready != 0 || d.Running != 1 {
		t.Fatalf("during warm-up: ready %d running %d", d.Ready, d.Running)
	}
	waitReady(t, n, "hello")
}

// TestAgentRestartAdoptsDepots restarts the node with its depots running: afterwards
// the same processes serve (none started twice), and a depot whose service was deleted
// while the agent was down is stopped (none orphaned).
func TestAgentRestartAdoptsDepots(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	ctx := context.Background()
	if _, err := n.Client.Apply(ctx, helloService(t, 2, "")); err != nil {
		t.Fatal(err)
	}
	before := waitReady(t, n, "hello")
	n = n.Restart(t)
	after := waitReady(t, n, "hello")
	if len(after.Depots) != 2 {
		t.Fatalf("after restart: %d depots", len(after.Depots))
	}
	pids := map[string]int{}
	for _, d := range before.Depots {
		pids[d.ID] = d.Status.PID
	}
	for _, d := range after.Depots {
		if pids[d.ID] != d.Status.PID {
			t.Fatalf("depot %s was started again (pid %d, was %d)", d.ID, d.Status.PID, pids[d.ID])
		}
		if code, _ := get(t, d.Addrs["http"], "/healthz"); code != 200 {
			t.Fatalf("adopted depot %s does not answer", d.ID)
		}
	}
	// Count the hello processes: exactly two.
	if got := countProcs(t, "example-hello", n.ID()); got != 2 {
		t.Fatalf("%d example-hello processes run, want 2", got)
	}
}

// countProcs counts the example-hello processes of depots of the given nodes (by the
// QNET_NODE their agent gave them), so tests running beside this one do not count.
func countProcs(t *testing.T, mode string, nodes ...string) int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if len(args) < 2 || args[1] != mode {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, id := range nodes {
			if strings.Contains("\x00"+string(env), "\x00QNET_NODE="+id+"\x00") {
				n++
				break
			}
		}
	}
	return n
}

// TestAPIRequiresCredential checks that no API endpoint answers without the operator's
// token, or with a wrong one.
func TestAPIRequiresCredential(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	anon := *n.Context
	anon.Token = ""
	wrong := *n.Context
	wrong.Token = "qnet_wrong"
	for _, c := range []struct {
		ctx  *client.Context
		code int
		msg  string
	}{{&anon, 401, "missing credential"}, {&wrong, 403, "wrong credential"}} {
		cl, err := client.New(c.ctx)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		_, errStatus := cl.Status(ctx)
		_, errList := cl.Services(ctx)
		_, errApply := cl.Apply(ctx, helloService(t, 1, ""))
		_, errVerify := cl.VerifyLedger(ctx)
		errLogs := cl.Logs(ctx, "hello", client.LogOptions{}, io.Discard)
		for i, err := range []error{errStatus, errList, errApply, errVerify, errLogs} {
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != c.code || !strings.Contains(ae.Message, c.msg) {
				t.Fatalf("call %d with token %q: %v, want %d %q", i, c.ctx.Token, err, c.code, c.msg)
			}
		}
	}
	if svcs, _ := n.Client.Services(context.Background()); len(svcs) != 0 {
		t.Fatal("an unauthenticated apply took effect")
	}
}

// TestBadInputStatus: a command that does not exist, a depot that exits at once and a
// host port that is taken each show up as a clear status, and the others keep running.
func TestBadInputStatus(t *testing.T) {
	n := qnettest.StartNode(t, qnettest.Options{})
	ctx := context.Background()
	ln, err := listenAny(t)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	svcs := decode(t, `apiVersion: qnet/v1
kind: Service
metadata: {name: missing}
spec:
  depot: {exec: {command: no-such-program-qnet}}
  resources: {cpu: 10m, memory: 8Mi}
  restart: {backoff: 50ms, maxBackoff: 100ms}
---
apiVersion: qnet/v1
kind: Service
metadata: {name: quitter}
spec:
  depot: {exec: {command: sh, args: [-c, "echo bye >&2; exit 7"]}}
  resources: {cpu: 10m, memory: 8Mi}
  restart: {policy: on-failure, backoff: 50ms, maxBackoff: 100ms}
---
apiVersion: qnet/v1
kind: Service
metadata: {name: once}
spec:
  depot: {exec: {command: sh, args: [-c, "exit 0"]}}
  resources: {cpu: 10m, memory: 8Mi}
  restart: {policy: on-failure}
---
apiVersion: qnet/v1
kind: Service
metadata: {name: porty}
spec:
  depot: {exec: {command: qnet, args: [example-hello]}}
  resources: {cpu: 10m, memory: 8Mi}
  ports: [{name: http, port: 8080, hostPort: `+port+`}]
`)
	svcs = append(svcs, helloService(t, 1, "")...)
	if _, err := n.Client.Apply(ctx, svcs); err != nil {
		t.Fatal(err)
	}
	waitReady(t, n, "hello")
	want := map[string]func(ledger.DepotStatus) bool{
		"missing": func(s ledger.DepotStatus) bool {
			return s.State == ledger.DepotFailing && strings.Contains(s.Reason, "no-such-program-qnet") && strings.Contains(s.Reason, "not found")
		},
		"quitter": func(s ledger.DepotStatus) bool {
			return s.State == ledger.DepotFailing && s.Restarts >= 2 && s.ExitCode != nil && *s.ExitCode == 7
		},
		"once": func(s ledger.DepotStatus) bool {
			return s.State == ledger.DepotExited && s.ExitCode != nil && *s.ExitCode == 0
		},
		"porty": func(s ledger.DepotStatus) bool {
			return s.State == ledger.DepotFailing && strings.Contains(s.Reason, "port "+port+" is already in use")
		},
	}
	for name, ok := range want {
		qnettest.WaitFor(t, 20*time.Second, "status of "+name, func() bool { return ok(depotOf(t, n, name).Status) })
	}
	// The healthy service kept serving throughout.
	d := depotOf(t, n, "hello")
	if code, _ := get(t, d.Addrs["http"], "/healthz"); code != 200 {
		t.Fatal("hello stopped answering")
	}
}

func TestStartRefusesBadDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := node.DefaultConfig(dir)
	if _, err := node.Start(context.Background(), cfg); !errors.Is(err, node.ErrNotInitialised) {
		t.Fatalf("empty data dir: %v", err)
	}
	n := qnettest.StartNode(t, qnettest.Options{})
	n.Stop(t, true)
	// A corrupted state file is reported and left as it was.
	path := filepath.Join(n.DataDir, node.StateFile)
	data, _ := os.ReadFile(path)
	for i := 0; i < len(data) && i < 8192; i++ {
		data[i] ^= 0xff
	}
	os.WriteFile(path, data, 0o600)
	cfg = node.DefaultConfig(n.DataDir)
	cfg.APIAddr = "127.0.0.1:0"
	_, err := node.Start(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupted state: %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(data) {
		t.Fatal("starting on a corrupted store changed it")
	}
	if _, err := node.Init(node.InitOptions{DataDir: n.DataDir, Network: "x", Operator: "y"}); !errors.Is(err, node.ErrInitialised) {
		t.Fatalf("init over an existing network: %v", err)
	}
}
