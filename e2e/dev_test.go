package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/client"
)

// replicaLine is a line of the replica table qnet dev prints once every replica is
// ready: "  hello-1a2b3c4d   on node NAME   http://127.0.0.1:20000".
var replicaLine = regexp.MustCompile(`^\s+(hello-[0-9a-f]+)\s+on node \S+\s+http://(\S+)\s*$`)

// TestDev runs qnet dev as a user does: start it, use the network from other qnet
// commands and with HTTP, stop it with Ctrl-C (SIGINT), and check it left nothing.
func TestDev(t *testing.T) {
	u := newUser(t)
	data := filepath.Join(u.dir, "devnet")
	nodeID := ""
	u.killNodeAtCleanup(&nodeID)

	dev := u.start("dev", "--data-dir", data, "--api-addr", "127.0.0.1:0")
	dev.waitLine(60*time.Second, "service/hello ready: 3/3 replicas")
	dev.waitLine(10*time.Second, "Press Ctrl-C to stop")

	// Where dev says the replicas answer.
	printed := map[string]string{}
	for _, l := range dev.allLines() {
		if m := replicaLine.FindStringSubmatch(l); m != nil {
			printed[m[1]] = m[2]
		}
	}
	if len(printed) != 3 {
		t.Fatalf("qnet dev listed %d replicas, want 3: %v\n%s", len(printed), printed, dev.output())
	}

	// The dev context is current in the user's context file.
	cfg, err := client.LoadConfig(u.config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Current != "dev" || cfg.Contexts["dev"] == nil {
		t.Fatalf("while qnet dev runs, the context file has current %q and contexts %v; want dev", cfg.Current, cfg.Contexts)
	}

	svcs := u.services()
	if len(svcs) != 1 || svcs[0].Name != "hello" || svcs[0].Desired != 3 || svcs[0].Ready != 3 || svcs[0].Placed != 3 {
		t.Fatalf("get services: %+v; want hello with 3/3 ready", svcs)
	}

	depots := u.depots()
	if len(depots) != 3 {
		t.Fatalf("get depots: %d depots, want 3: %+v", len(depots), depots)
	}
	nodeID = depots[0].Node
	var depotPIDs []int
	for _, d := range depots {
		if d.Service != "hello" || d.Status.State != "ready" || !d.Status.Ready || d.Node != nodeID {
			t.Errorf("depot %s: service %q on node %q, state %q ready %v; want a ready hello depot on %s", d.ID, d.Service, d.Node, d.Status.State, d.Status.Ready, nodeID)
		}
		if d.Addrs["http"] == "" || printed[d.ID] != d.Addrs["http"] {
			t.Errorf("depot %s answers at %q, qnet dev printed %q", d.ID, d.Addrs["http"], printed[d.ID])
		}
		depotPIDs = append(depotPIDs, d.Status.PID)
	}
	if t.Failed() {
		t.FailNow()
	}
	hellos := withMode(u.nodeProcesses(nodeID), "example-hello")
	if !sameInts(pids(hellos), depotPIDs) {
		t.Fatalf("example-hello processes of the node: %v; get depots says %v", pids(hellos), depotPIDs)
	}
	// Each depot's shim leads the depot's session.
	var shimPIDs []int
	for _, h := range hellos {
		shimPIDs = append(shimPIDs, h.session)
	}

	desc := u.ok("describe", "service", "hello").stdout
	for _, want := range []string{"Name:", "hello", "3 desired, 3 up-to-date, 3 running, 3 ready", "exec qnet example-hello", "service.applied"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe service hello lacks %q:\n%s", want, desc)
		}
	}
	for _, d := range depots {
		if !strings.Contains(desc, d.ID) {
			t.Errorf("describe service hello lacks depot %s:\n%s", d.ID, desc)
		}
	}

	// Each replica answers for itself; six requests each also give each log more
	// lines than --tail keeps.
	for _, d := range depots {
		for range 6 {
			wantHello(t, d.Addrs["http"], d.ID)
		}
	}
	waitFor(t, 10*time.Second, "every depot to have logged more than 5 lines", func() (bool, string) {
		full := u.ok("logs", "hello").stdout
		per := linesPerDepot(full)
		if len(per) != 3 {
			return false, full
		}
		for _, n := range per {
			if n < 6 {
				return false, full
			}
		}
		return true, ""
	})
	// The example service writes its log to stdout only, so each depot shows 5 lines.
	tail := u.ok("logs", "hello", "--tail", "5").stdout
	per := linesPerDepot(tail)
	if len(per) != 3 {
		t.Errorf("logs hello --tail 5 shows %d depots, want 3:\n%s", len(per), tail)
	}
	for _, d := range depots {
		if per[d.ID] != 5 {
			t.Errorf("logs hello --tail 5 shows %d lines of %s, want 5:\n%s", per[d.ID], d.ID, tail)
		}
	}

	verify := u.ok("ledger", "verify")
	if m := regexp.MustCompile(`Ledger verified: (\d+) block\(s\)`).FindStringSubmatch(verify.stdout); m == nil {
		t.Errorf("ledger verify: %s", verify)
	} else if blocks, _ := strconv.Atoi(m[1]); blocks < 3 {
		t.Errorf("ledger verify checked %d blocks; the genesis, the apply and the placements make at least 3", blocks)
	}

	// Ctrl-C stops everything and undoes the context.
	dev.signal(syscall.SIGINT)
	if code := dev.wait(40 * time.Second); code != 0 {
		t.Fatalf("qnet dev exited with code %d after SIGINT, want 0; output:\n%s", code, dev.output())
	}
	// qnet dev stops every depot, and its shim, before it exits.
	for _, pid := range append(depotPIDs, shimPIDs...) {
		if running(pid) {
			t.Errorf("process %d of a depot still runs after qnet dev exited", pid)
		}
	}
	// Anything else of the node (a shim started in advance) goes on its own.
	waitFor(t, 10*time.Second, "every process of the node to exit", func() (bool, string) {
		left := u.nodeProcesses(nodeID)
		return len(left) == 0, fmt.Sprintf("%+v", left)
	})
	cfg, err = client.LoadConfig(u.config)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Contexts["dev"]; ok || cfg.Current != "" {
		t.Errorf("after qnet dev exited, the context file has current %q and contexts %v; want the dev context gone", cfg.Current, cfg.Contexts)
	}
	// The port may serve someone else by now (another node on this machine), but not
	// this depot.
	for _, d := range depots {
		if _, body, err := get("http://" + d.Addrs["http"] + "/"); err == nil && strings.Contains(body, "hello from "+d.ID) {
			t.Errorf("depot %s still answers at %s after qnet dev exited", d.ID, d.Addrs["http"])
		}
	}
}

// linesPerDepot counts the lines of `qnet logs` output by the depot in their prefix.
func linesPerDepot(logs string) map[string]int {
	n := map[string]int{}
	for l := range strings.Lines(logs) {
		if strings.HasPrefix(l, "[") {
			if end := strings.Index(l, "]"); end > 0 {
				n[l[1:end]]++
			}
		}
	}
	return n
}

// sameInts reports whether a and b hold the same numbers, in any order.
func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[int]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		if count[x]--; count[x] < 0 {
			return false
		}
	}
	return true
}
