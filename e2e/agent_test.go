package e2e

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nodeIDLine is the line of qnet init's output that names the new node.
var nodeIDLine = regexp.MustCompile(`node ID:\s+(\S+)`)

// initNode runs qnet init for a new network in dataDir whose API is at addr, and
// returns the node's ID.
func initNode(u *user, dataDir, network, addr string) string {
	u.t.Helper()
	r := u.ok("init", "--data-dir", dataDir, "--network", network, "--api-addr", addr)
	m := nodeIDLine.FindStringSubmatch(r.stdout)
	if m == nil {
		u.t.Fatalf("qnet init printed no node ID\n%s", r)
	}
	return m[1]
}

// startAgent starts qnet agent on dataDir with no --api-addr, and waits until it says
// it runs at addr: the address given to qnet init, which the user's context names.
func startAgent(u *user, dataDir, addr string) *proc {
	u.t.Helper()
	agent := u.start("agent", "--data-dir", dataDir)
	line := agent.waitLine(30*time.Second, "is running; API at https://")
	if !strings.HasSuffix(line, "API at https://"+addr) {
		u.t.Fatalf("qnet agent without --api-addr does not listen where qnet init said (%s): %s", addr, line)
	}
	return agent
}

// TestAgentRestartAdoptsDepots: a network made with qnet init and run by qnet agent
// takes a manifest with apply --wait; when the agent is killed with SIGKILL its depots
// keep serving, and the next agent adopts them: the same processes, none started twice.
// Deleting the service stops them; SIGTERM stops the agent cleanly.
func TestAgentRestartAdoptsDepots(t *testing.T) {
	u := newUser(t)
	data := filepath.Join(u.dir, "node")
	addr := freeAddr(t)
	nodeID := initNode(u, data, "e2e", addr)
	u.killNodeAtCleanup(&nodeID)

	agent := startAgent(u, data, addr)
	r := u.ok("apply", "-f", filepath.Join("testdata", "hello-2.yaml"), "--wait", "--timeout", "60s")
	for _, want := range []string{"service/hello created (revision 1)", "service/hello ready: 2/2 replicas (revision 1)"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("apply --wait did not print %q\n%s", want, r)
		}
	}
	before := u.depots()
	if len(before) != 2 {
		t.Fatalf("get depots: %d depots, want 2: %+v", len(before), before)
	}
	depotPIDs := map[string]int{}
	for _, d := range before {
		if !d.Status.Ready || d.Status.PID <= 0 || d.Node != nodeID {
			t.Fatalf("depot %s: %+v; want ready on node %s with a PID", d.ID, d, nodeID)
		}
		depotPIDs[d.ID] = d.Status.PID
		wantHello(t, d.Addrs["http"], d.ID)
	}
	// The processes of the depots: the example services and their shims, which lead
	// the depots' sessions.
	supervised := func() map[int]int {
		t.Helper()
		procs := u.nodeProcesses(nodeID)
		live := map[int]bool{}
		for _, p := range withMode(procs, "shim") {
			live[p.pid] = true
		}
		shimOf := map[int]int{}
		for _, h := range withMode(procs, "example-hello") {
			if !live[h.session] {
				t.Fatalf("example-hello %d runs without its shim (session %d): %+v", h.pid, h.session, procs)
			}
			shimOf[h.pid] = h.session
		}
		return shimOf
	}
	shimOf := supervised()
	if len(shimOf) != 2 {
		t.Fatalf("%d example-hello processes of the node run, want 2: %v", len(shimOf), shimOf)
	}
	for id, pid := range depotPIDs {
		if _, ok := shimOf[pid]; !ok {
			t.Fatalf("depot %s: pid %d is no example-hello process of the node (those are %v)", id, pid, shimOf)
		}
	}

	// SIGKILL the agent, and only it: its depots keep running and serving.
	agent.signal(syscall.SIGKILL)
	if code := agent.wait(10 * time.Second); code != -1 {
		t.Fatalf("the agent exited with code %d after SIGKILL, want death by the signal", code)
	}
	for _, d := range before {
		if !running(d.Status.PID) || !running(shimOf[d.Status.PID]) {
			t.Fatalf("depot %s (pid %d, shim %d) died with its agent", d.ID, d.Status.PID, shimOf[d.Status.PID])
		}
		wantHello(t, d.Addrs["http"], d.ID)
	}

	// The next agent adopts them. Once it says so for both, it has decided: it runs
	// their handles and starts no other process for them.
	agent = startAgent(u, data, addr)
	for _, d := range before {
		agent.waitLine(20*time.Second, "adopted running depot", "depot="+d.ID, fmt.Sprintf("pid=%d", d.Status.PID))
	}
	var after []depot
	waitFor(t, 20*time.Second, "both depots to be reported ready by the new agent", func() (bool, string) {
		after = u.depots()
		ready := 0
		for _, d := range after {
			if d.Status.Ready {
				ready++
			}
		}
		return len(after) == 2 && ready == 2, fmt.Sprintf("%+v", after)
	})
	for _, d := range after {
		if d.Status.PID != depotPIDs[d.ID] || d.Status.Restarts != 0 {
			t.Errorf("depot %s: pid %d with %d restart(s) after the agent restarted; want the adopted pid %d and no restart",
				d.ID, d.Status.PID, d.Status.Restarts, depotPIDs[d.ID])
		}
		wantHello(t, d.Addrs["http"], d.ID)
	}
	if now := supervised(); !maps.Equal(now, shimOf) {
		t.Fatalf("after the agent restarted, the example-hello processes and their shims are %v; want exactly the adopted %v", now, shimOf)
	}

	// Deleting the service stops its depots for good.
	r = u.ok("delete", "service", "hello")
	if !strings.Contains(r.stdout, "service/hello deleted") {
		t.Errorf("delete service hello: %s", r)
	}
	waitFor(t, 20*time.Second, "the depots' processes to exit", func() (bool, string) {
		for hello, shim := range shimOf {
			if running(hello) || running(shim) {
				return false, fmt.Sprintf("example-hello %d (running %v), its shim %d (running %v)", hello, running(hello), shim, running(shim))
			}
		}
		left := withMode(u.nodeProcesses(nodeID), "example-hello")
		return len(left) == 0, fmt.Sprintf("example-hello processes of the node: %+v", left)
	})
	if svcs := u.services(); len(svcs) != 0 {
		t.Errorf("get services after delete: %+v", svcs)
	}

	agent.signal(syscall.SIGTERM)
	if code := agent.wait(40 * time.Second); code != 0 {
		t.Fatalf("the agent exited with code %d after SIGTERM, want 0; output:\n%s", code, agent.output())
	}
	if !strings.Contains(agent.output(), "Agent stopped.") {
		t.Errorf("the agent did not say it stopped:\n%s", agent.output())
	}
	// No process of the node outlives it now that it runs no depot: not even a shim
	// an agent started in advance, of this agent or of the one killed.
	waitFor(t, 10*time.Second, "every process of the node to exit", func() (bool, string) {
		left := u.nodeProcesses(nodeID)
		return len(left) == 0, fmt.Sprintf("%+v", left)
	})
}
