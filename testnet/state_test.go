package testnet

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sample is a valid state of a three-node loopback testnet.
func sample() *State {
	st := &State{Version: stateVersion, Name: "local", Network: "local", Binary: "/usr/bin/qnet", UserConfig: "/root/.qnet/config.yaml"}
	for i := 1; i <= 3; i++ {
		st.Nodes = append(st.Nodes, Node{
			Index: i, Name: nodeName(i), ID: strings.Repeat(string(rune('a'+i)), 16),
			DataDir: "/tn/" + nodeName(i) + "/data", Log: "/tn/" + nodeName(i) + "/agent.log",
			API: "127.0.0.1:4000" + string(rune('0'+i)), Mesh: "127.0.0.1:5000" + string(rune('0'+i)),
			PID: 100 + i, PIDStart: 1000, GID: gidBase + uint32(i),
		})
	}
	return st
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	st := sample()
	st.Partition = &Partition{Groups: [2][]int{{1}, {2, 3}}}
	if err := SaveState(dir, st); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("loaded %+v, saved %+v", got, st)
	}
	// No temporary file is left beside it.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != StateFile {
		t.Fatalf("dir holds %v, want only %s", entries, StateFile)
	}
}

func TestLoadStateMissing(t *testing.T) {
	_, err := LoadState(t.TempDir())
	if !errors.Is(err, ErrNoTestnet) || !strings.Contains(err.Error(), "qnet testnet up") {
		t.Fatalf("LoadState of an empty dir: %v; want ErrNoTestnet saying how to start one", err)
	}
	if _, err := Open(t.TempDir(), false); !errors.Is(err, ErrNoTestnet) {
		t.Fatalf("Open of an empty dir: %v; want ErrNoTestnet", err)
	}
}

func TestDecodeStateRefuses(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(s *State)
		want   string
	}{
		{"version", func(s *State) { s.Version = 9 }, "version 9"},
		{"name", func(s *State) { s.Name = "Bad_Name" }, "testnet name"},
		{"no network", func(s *State) { s.Network = "" }, "network"},
		{"relative binary", func(s *State) { s.Binary = "qnet" }, "absolute path"},
		{"no nodes", func(s *State) { s.Nodes = nil }, "nodes: 0"},
		{"index", func(s *State) { s.Nodes[1].Index = 5 }, "nodes[1].index: 5, want 2"},
		{"node name", func(s *State) { s.Nodes[0].Name = "alpha" }, `nodes[0].name: "alpha"`},
		{"duplicate id", func(s *State) { s.Nodes[2].ID = s.Nodes[0].ID }, "appears twice"},
		{"relative data dir", func(s *State) { s.Nodes[0].DataDir = "data" }, "absolute"},
		{"api address", func(s *State) { s.Nodes[0].API = "localhost:80" }, "nodes[0].api"},
		{"mesh port", func(s *State) { s.Nodes[2].Mesh = "127.0.0.1:70000" }, "nodes[2].mesh"},
		{"negative pid", func(s *State) { s.Nodes[0].PID = -1 }, "pid: -1"},
		{"namespace without netns", func(s *State) { s.Nodes[0].Namespace = "qnet-x-1" }, "namespace"},
		{"netns subnet", func(s *State) {
			s.NetNS = &NetNS{Bridge: "qtn0", Subnet: "nonsense"}
			for i := range s.Nodes {
				s.Nodes[i].Namespace = "ns"
			}
		}, "netns.subnet"},
		{"empty side", func(s *State) { s.Partition = &Partition{Groups: [2][]int{{1}, {}}} }, "groups[1]: empty"},
		{"node on both sides", func(s *State) { s.Partition = &Partition{Groups: [2][]int{{1}, {1, 2}}} }, "both groups"},
		{"unknown node", func(s *State) { s.Partition = &Partition{Groups: [2][]int{{1}, {4}}} }, "node 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := sample()
			c.mutate(st)
			data, err := json.Marshal(st)
			if err != nil {
				t.Fatal(err)
			}
			_, err = DecodeState(data)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("DecodeState: %v, want an error with %q", err, c.want)
			}
			if SaveState(t.TempDir(), st) == nil {
				t.Fatal("SaveState wrote a state that does not validate")
			}
		})
	}
	for _, bad := range []string{`{"version":1,"colour":"blue"}`, `{"version":1} {}`, `[`} {
		if _, err := DecodeState([]byte(bad)); err == nil {
			t.Errorf("DecodeState(%s) took it", bad)
		}
	}
}

func TestLookup(t *testing.T) {
	st := sample()
	for _, ref := range []string{"2", " 2 ", "node2", st.Nodes[1].ID} {
		n, err := st.Lookup(ref)
		if err != nil || n.Index != 2 {
			t.Errorf("Lookup(%q) = %v, %v; want node2", ref, n, err)
		}
	}
	for ref, want := range map[string]string{
		"0":     "nodes 1 to 3",
		"4":     "nodes 1 to 3",
		"node9": `node "node9": not a node of testnet "local"`,
		"":      "not a node",
	} {
		if _, err := st.Lookup(ref); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Lookup(%q): %v, want %q", ref, err, want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"local", "a", "lab-2", strings.Repeat("x", 32)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "Local", "a_b", "a/b", strings.Repeat("x", 33)} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) took it", bad)
		}
	}
}

func TestOpenLocks(t *testing.T) {
	dir := t.TempDir()
	if err := SaveState(dir, sample()); err != nil {
		t.Fatal(err)
	}
	a, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, true); err == nil || !strings.Contains(err.Error(), "another qnet testnet command") {
		t.Fatalf("second exclusive Open: %v, want a refusal", err)
	}
	// Reading needs no lock.
	if _, err := Open(dir, false); err != nil {
		t.Fatalf("shared Open while locked: %v", err)
	}
	a.Close()
	b, err := Open(dir, true)
	if err != nil {
		t.Fatalf("exclusive Open after Close: %v", err)
	}
	b.Close()
}

func TestUpRefusesBadOptions(t *testing.T) {
	if err := supported(); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	cases := []struct {
		o    Options
		want string
	}{
		{Options{Nodes: 0, Dir: t.TempDir()}, "--nodes 0"},
		{Options{Nodes: MaxNodes + 1, Dir: t.TempDir()}, "want 1 to"},
		{Options{Nodes: 1, Name: "No", Dir: t.TempDir()}, "testnet name"},
		{Options{Nodes: 1, Dir: t.TempDir(), Binary: "/nonexistent/qnet"}, "not a file"},
		{Options{Nodes: 1, Dir: dir, Binary: exe}, "is not empty"},
	}
	for _, c := range cases {
		if _, err := Up(t.Context(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Up(%+v): %v, want %q", c.o, err, c.want)
		}
	}
	if err := SaveState(dir, sample()); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(t.Context(), Options{Nodes: 1, Dir: dir, Binary: exe}); err == nil || !strings.Contains(err.Error(), "already in") {
		t.Errorf("Up over a testnet: %v, want a refusal", err)
	}
}

func FuzzDecodeState(f *testing.F) {
	data, _ := json.Marshal(sample())
	f.Add(data)
	st := sample()
	st.NetNS = &NetNS{Bridge: "qtn1", Subnet: "10.77.0.0/24"}
	for i := range st.Nodes {
		st.Nodes[i].Namespace, st.Nodes[i].Veth = "qnet-local-1", "qt1-1"
	}
	st.Partition = &Partition{Groups: [2][]int{{1}, {2, 3}}}
	data, _ = json.Marshal(st)
	f.Add(data)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"nodes":[{"index":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeState(data)
		if err != nil {
			return
		}
		// A state that decodes is one SaveState writes and LoadState reads back.
		dir := t.TempDir()
		if err := SaveState(dir, st); err != nil {
			t.Fatalf("a decoded state does not save: %v", err)
		}
		again, err := LoadState(dir)
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, again, st)
		}
		for _, n := range st.Nodes {
			if got, err := st.Lookup(n.Name); err != nil || got.Index != n.Index {
				t.Fatalf("Lookup(%s) = %v, %v", n.Name, got, err)
			}
		}
	})
}
