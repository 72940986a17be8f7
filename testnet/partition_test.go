package testnet

import (
	"reflect"
	"strings"
	"testing"
)

func TestNftRuleset(t *testing.T) {
	st := sample()
	sides := [2][]Node{{st.Nodes[0]}, {st.Nodes[1], st.Nodes[2]}}
	got, err := nftRuleset("qnet_testnet_local_1", sides)
	if err != nil {
		t.Fatal(err)
	}
	g := func(i int) string { return strings.TrimPrefix(st.Nodes[i].Mesh, "127.0.0.1:") }
	for _, want := range []string{
		// It replaces an older table in the same transaction.
		"table inet qnet_testnet_local_1\ndelete table inet qnet_testnet_local_1\ntable inet qnet_testnet_local_1 {",
		// Side 1's node to side 2's mesh ports, and side 2's nodes to side 1's.
		`meta skgid { 2113929217 } tcp dport { ` + g(1) + `, ` + g(2) + ` } update @cut { tcp sport . tcp dport } drop`,
		`meta skgid { 2113929218, 2113929219 } tcp dport { ` + g(0) + ` } update @cut { tcp sport . tcp dport } drop`,
		// Answers on the connections recorded.
		`tcp dport . tcp sport @cut drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, got)
		}
	}
	noGID := sample()
	noGID.Nodes[2].GID = 0
	if _, err := nftRuleset("t", [2][]Node{{noGID.Nodes[0]}, {noGID.Nodes[2]}}); err == nil || !strings.Contains(err.Error(), "node3 runs without a group ID") {
		t.Errorf("a node without a group ID: %v", err)
	}
	if _, err := nftRuleset("t", [2][]Node{{st.Nodes[0]}, nil}); err == nil {
		t.Error("an empty side was taken")
	}
	if d := nftDelete("x"); d != "table inet x\ndelete table inet x\n" {
		t.Errorf("nftDelete = %q", d)
	}
}

func TestNftTableUnique(t *testing.T) {
	a, b := nftTable("lab-1", "/a"), nftTable("lab-1", "/b")
	if a == b || !strings.HasPrefix(a, "qnet_testnet_lab_1_") {
		t.Fatalf("tables %q and %q", a, b)
	}
}

func TestBlackholes(t *testing.T) {
	n := func(i int) Node {
		return Node{Index: i, Name: nodeName(i), Namespace: "ns" + nodeName(i), Mesh: hostIn(mustSubnet(t), i) + ":7701"}
	}
	got, err := blackholes([2][]Node{{n(1)}, {n(2), n(3)}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"nsnode1": {"10.77.9.2/32", "10.77.9.3/32"},
		"nsnode2": {"10.77.9.1/32"},
		"nsnode3": {"10.77.9.1/32"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("blackholes = %v, want %v", got, want)
	}
}

func TestNetnsNames(t *testing.T) {
	br, nss, veths := netnsNames("a-very-long-testnet-name-indeed", "/some/dir", 200)
	if len(br) > 15 {
		t.Errorf("bridge %q is longer than an interface name may be", br)
	}
	for _, v := range veths {
		if len(v) > 15 {
			t.Fatalf("veth %q is longer than an interface name may be", v)
		}
	}
	if nss[199] != "qnet-a-very-long-testnet-name-indeed-200" {
		t.Errorf("namespace %q", nss[199])
	}
}
