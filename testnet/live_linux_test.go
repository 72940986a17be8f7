//go:build linux

package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/node"
)

// TestLoopbackPartition applies the nftables partition of a loopback testnet to three
// peers (A and C against B, each with a group ID of its own, as agents get) and checks
// that it cuts both directions of the connections that exist and new ones between the
// sides, and nothing else; and that removing the table heals it.
func TestLoopbackPartition(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("partitions need root (nftables); run as root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed (Debian: apt-get install nftables)")
	}
	base := uint32(gidBase) + 0xFFFF*256 // far from the group IDs of testnets made by hand
	a := startHelper(t, "node", base+1, false)
	b := startHelper(t, "node", base+2, false)
	c := startHelper(t, "node", base+3, false)
	node := func(h *helper, i int) Node {
		return Node{Index: i, Name: nodeName(i), Mesh: "127.0.0.1:" + h.first, GID: base + uint32(i)}
	}
	table := nftTable("test", t.TempDir())
	ctx := context.Background()
	t.Cleanup(func() { runNft(ctx, nftDelete(table)) })

	a.want("ok 0", "dial %s", b.first) // A -> B: connection 0 of A
	b.want("ok 0", "dial %s", a.first) // B -> A: connection 0 of B
	a.want("ok 1", "dial %s", c.first) // A -> C: connection 1 of A
	a.want("ok", "send 0")
	b.want("ok", "send 0")
	a.want("ok", "send 1")
	b.want("ok 1", "push")
	a.want("ok", "recv 0")

	script, err := nftRuleset(table, [2][]Node{{node(a, 1), node(c, 3)}, {node(b, 2)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := runNft(ctx, script); err != nil {
		t.Fatal(err)
	}
	a.want("err", "send 0") // A's packets to B's port, on a connection that exists
	b.want("ok 1", "push")  // B's packets back on it, which A's last packet recorded
	a.want("err", "recv 0") // so they are dropped too
	b.want("err", "send 0") // B's packets to A's port
	a.want("ok", "send 1")  // A and C are on one side
	a.want("err", "dial %s", b.first)
	c.want("ok 0", "dial %s", a.first)
	c.want("ok", "send 0")
	// Others (the operator's API client, depots) still reach B.
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+b.first, time.Second)
	if err != nil {
		t.Fatalf("a process of neither side cannot reach B: %v", err)
	}
	conn.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 5)
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(buf); err != nil || string(buf) != "pong\n" {
		t.Fatalf("a process of neither side: read %q, %v", buf, err)
	}
	conn.Close()

	if err := runNft(ctx, nftDelete(table)); err != nil {
		t.Fatal(err)
	}
	a.want("ok 2", "dial %s", b.first)
	a.want("ok", "send 2")
	b.want("ok 1", "dial %s", a.first)
	b.want("ok", "send 1")
}

// TestKillNode kills a made-up node: an "agent" with a child that has no state file
// yet (a shim being started), a "shim" known from its depot's state.json with a
// workload in its session, and, where cgroups can be made, a process in the node's
// cgroup parent. All must die; the agent's unrelated neighbour must not.
func TestKillNode(t *testing.T) {
	dir := t.TempDir()
	n := &Node{Index: 1, Name: "node1", ID: fmt.Sprintf("testnet%09d", os.Getpid()), DataDir: dir}

	agent := startHelper(t, "spawn", 0, true)
	agentChild, _ := strconv.Atoi(agent.first)
	n.PID = agent.cmd.Process.Pid
	p, _ := readProc(n.PID)
	n.PIDStart = p.start

	shim := startHelper(t, "spawn", 0, true)
	workload, _ := strconv.Atoi(shim.first)
	sp, _ := readProc(shim.cmd.Process.Pid)
	wp, _ := readProc(workload)
	depot := filepath.Join(dir, node.DepotDir, "hello-1")
	if err := os.MkdirAll(depot, 0o700); err != nil {
		t.Fatal(err)
	}
	state, _ := json.Marshal(map[string]any{"phase": "running", "shimPid": sp.pid, "shimStart": sp.start, "pid": wp.pid, "pidStart": wp.start})
	if err := os.WriteFile(filepath.Join(depot, "state.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	want := []int{n.PID, agentChild, sp.pid, workload}

	// A process in the node's cgroup parent, in the first hierarchy that takes one.
	parent := "qnet-" + n.ID
	t.Cleanup(func() { removeCgroups(parent) })
	if os.Geteuid() == 0 {
		for _, mnt := range cgroupMounts() {
			group := filepath.Join(mnt, parent, "hello-2")
			if os.MkdirAll(group, 0o755) != nil {
				continue
			}
			grouped := startHelper(t, "sleep", 0, true)
			if err := os.WriteFile(filepath.Join(group, "cgroup.procs"), []byte(strconv.Itoa(grouped.cmd.Process.Pid)), 0o644); err != nil {
				continue
			}
			want = append(want, grouped.cmd.Process.Pid)
			break
		}
	}
	bystander := startHelper(t, "sleep", 0, true)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	killed, err := killNode(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range want {
		if running(pid, 0) {
			t.Errorf("process %d still runs after killNode", pid)
		}
		found := false
		for _, k := range killed {
			found = found || k == pid
		}
		if !found {
			t.Errorf("killNode reports %v killed, without %d", killed, pid)
		}
	}
	if !running(bystander.cmd.Process.Pid, 0) {
		t.Error("killNode killed a process that is not the node's")
	}
	if len(want) == 5 {
		removeCgroups(parent)
		for _, mnt := range cgroupMounts() {
			if _, err := os.Stat(filepath.Join(mnt, parent)); err == nil {
				t.Errorf("cgroup %s left after removeCgroups", filepath.Join(mnt, parent))
			}
		}
	} else {
		t.Log("no cgroup could be made here: the cgroup part was not tested")
	}
}

func TestParseStat(t *testing.T) {
	p, err := parseStat([]byte("4242 (qnet (a) b) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"))
	if err != nil {
		t.Fatal(err)
	}
	if p.pid != 4242 || p.ppid != 1 || p.session != 4242 || p.state != 'S' || p.start != 987654 {
		t.Fatalf("parseStat = %+v", p)
	}
	self, ok := readProc(os.Getpid())
	if !ok || !self.live() || self.pid != os.Getpid() || self.ppid != os.Getppid() {
		t.Fatalf("readProc(self) = %+v, %v", self, ok)
	}
	if !running(os.Getpid(), self.start) || running(os.Getpid(), self.start+1) {
		t.Fatal("running does not tell this process from a later one with its PID")
	}
	for _, bad := range []string{"", "1 (x", "x (y) S 1 2 3", "1 (y) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 notanumber"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) took it", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("4242 (qnet) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"))
	f.Add([]byte("1 ((() Z 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseStat(data)
		if err != nil {
			return
		}
		if !strings.Contains(string(data), strconv.Itoa(p.pid)) {
			t.Fatalf("pid %d is not in %q", p.pid, data)
		}
	})
}

// TestNetNSPartition makes three namespaces on a bridge as up --netns does, with a
// peer listening in each, and checks that a partition cuts connections that exist and
// new ones between its sides only, that a new partition replaces the old one, that
// heal restores every path, and that teardown removes what setup made.
func TestNetNSPartition(t *testing.T) {
	if err := checkNetNS(); err != nil {
		t.Skip(err)
	}
	subnet, err := freeSubnet()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name := fmt.Sprintf("t%d", os.Getpid())
	bridge, nss, veths := netnsNames(name, dir, 3)
	st := &State{Version: stateVersion, Name: name, Network: name, Binary: "/bin/true", NetNS: &NetNS{Bridge: bridge, Subnet: subnet.String()}}
	for i := 1; i <= 3; i++ {
		host := hostIn(subnet, i)
		st.Nodes = append(st.Nodes, Node{Index: i, Name: nodeName(i), DataDir: dir, Log: dir, API: host + ":7700", Mesh: host + ":7701", Namespace: nss[i-1], Veth: veths[i-1]})
	}
	ctx := context.Background()
	t.Cleanup(func() { teardownNetNS(ctx, st) })
	if err := setupNetNS(ctx, st); err != nil {
		t.Fatal(err)
	}
	var peers []*helper
	for _, n := range st.Nodes {
		peers = append(peers, startHelperIn(t, n.Namespace, n.Mesh, "node", 0, false))
	}
	a, b, c := peers[0], peers[1], peers[2]
	mesh := func(i int) string { return st.Nodes[i-1].Mesh }

	a.want("ok 0", "dial %s", mesh(2))
	a.want("ok", "send 0")
	if err := applyPartition(ctx, st, dir, [2][]int{{1}, {2, 3}}); err != nil {
		t.Fatal(err)
	}
	st.Partition = &Partition{Groups: [2][]int{{1}, {2, 3}}}
	a.want("err", "send 0") // a connection that exists
	a.want("err", "dial %s", mesh(2))
	c.want("err", "dial %s", mesh(1))
	b.want("ok 0", "dial %s", mesh(3))
	b.want("ok", "send 0")

	// 1,2 / 3 replaces 1 / 2,3.
	if err := applyPartition(ctx, st, dir, [2][]int{{1, 2}, {3}}); err != nil {
		t.Fatal(err)
	}
	st.Partition = &Partition{Groups: [2][]int{{1, 2}, {3}}}
	a.want("ok 1", "dial %s", mesh(2))
	a.want("ok", "send 1")
	b.want("err", "send 0")
	a.want("err", "dial %s", mesh(3))

	if err := healPartition(ctx, st, dir); err != nil {
		t.Fatal(err)
	}
	b.want("ok", "send 0")
	a.want("ok 2", "dial %s", mesh(3))
	a.want("ok", "send 2")

	for _, p := range peers {
		p.in.Close()
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
	if err := teardownNetNS(ctx, st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if _, err := os.Stat("/run/netns/" + n.Namespace); err == nil {
			t.Errorf("namespace %s left", n.Namespace)
		}
		if _, err := net.InterfaceByName(n.Veth); err == nil {
			t.Errorf("veth %s left", n.Veth)
		}
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s left", bridge)
	}
}
