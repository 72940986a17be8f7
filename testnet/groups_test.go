package testnet

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseGroups(t *testing.T) {
	cases := []struct {
		args []string
		want [][]string
	}{
		{[]string{"1,2", "/", "3,4,5"}, [][]string{{"1", "2"}, {"3", "4", "5"}}},
		{[]string{"1,2/3"}, [][]string{{"1", "2"}, {"3"}}},
		{[]string{"1", "2", "/", "node3"}, [][]string{{"1", "2"}, {"node3"}}},
		{[]string{"3"}, [][]string{{"3"}}},
		{[]string{"node1,,node2"}, [][]string{{"node1", "node2"}}},
	}
	for _, c := range cases {
		got, err := ParseGroups(c.args)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseGroups(%q) = %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	bad := []struct {
		args []string
		want string
	}{
		{nil, "first group names no node"},
		{[]string{"/", "3"}, "first group names no node"},
		{[]string{"1", "/"}, "second group names no node"},
		{[]string{"1/2/3"}, "one '/'"},
		{[]string{" , "}, "names no node"},
	}
	for _, c := range bad {
		if _, err := ParseGroups(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseGroups(%q): %v, want %q", c.args, err, c.want)
		}
	}
}

func TestResolveGroups(t *testing.T) {
	st := sample() // three nodes
	cases := []struct {
		groups [][]string
		want   [2][]int
	}{
		{[][]string{{"1"}, {"2", "3"}}, [2][]int{{1}, {2, 3}}},
		{[][]string{{"node3", "1"}, {"2"}}, [2][]int{{1, 3}, {2}}},
		{[][]string{{"2"}}, [2][]int{{2}, {1, 3}}},
		{[][]string{{"1", "node1"}, {"3"}}, [2][]int{{1}, {3}}}, // named twice, on one side
		{[][]string{{st.Nodes[1].ID}, {"1"}}, [2][]int{{2}, {1}}},
	}
	for _, c := range cases {
		got, err := resolveGroups(st, c.groups)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("resolveGroups(%q) = %v, %v; want %v", c.groups, got, err, c.want)
		}
	}
	bad := []struct {
		groups [][]string
		want   string
	}{
		{[][]string{{"1"}, {"1", "2"}}, "in both groups"},
		{[][]string{{"1", "2", "3"}}, "nothing is left on the other side"},
		{[][]string{{"7"}, {"1"}}, "nodes 1 to 3"},
		{[][]string{{"gateway"}}, `node "gateway"`},
	}
	for _, c := range bad {
		if _, err := resolveGroups(st, c.groups); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("resolveGroups(%q): %v, want %q", c.groups, err, c.want)
		}
	}
}

func FuzzParseGroups(f *testing.F) {
	for _, s := range []string{"1,2 / 3,4,5", "3", "node1/node2", "/", "1//2", " , / ,", "a\tb/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		groups, err := ParseGroups(strings.Fields(s))
		if err != nil {
			return
		}
		if len(groups) < 1 || len(groups) > 2 {
			t.Fatalf("ParseGroups(%q) = %d groups", s, len(groups))
		}
		for _, g := range groups {
			if len(g) == 0 {
				t.Fatalf("ParseGroups(%q): an empty group", s)
			}
			for _, ref := range g {
				if ref == "" || strings.ContainsAny(ref, ",/ \t") {
					t.Fatalf("ParseGroups(%q): reference %q", s, ref)
				}
			}
		}
		// Whatever parses resolves to two disjoint sides or a clear error.
		st := sample()
		sides, err := resolveGroups(st, groups)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, side := range sides {
			if len(side) == 0 {
				t.Fatalf("ParseGroups(%q): an empty side %v", s, sides)
			}
			for _, i := range side {
				if seen[i] {
					t.Fatalf("node %d on both sides: %v", i, sides)
				}
				seen[i] = true
			}
		}
	})
}
