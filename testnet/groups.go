package testnet

import (
	"fmt"
	"slices"
	"strings"
)

// ParseGroups parses the node groups of `qnet testnet partition`: the arguments, joined
// by spaces, are one or two groups separated by "/", each a list of node references
// (index, name or ID) separated by commas or spaces: "1,2 / 3,4,5", or "3" alone for
// node 3 against every other node. It returns one or two non-empty groups.
func ParseGroups(args []string) ([][]string, error) {
	text := strings.Join(args, " ")
	parts := strings.Split(text, "/")
	if len(parts) > 2 {
		return nil, fmt.Errorf("partition %q: want one or two groups of nodes separated by one '/', e.g. 1,2 / 3,4,5", text)
	}
	var groups [][]string
	for i, p := range parts {
		refs := strings.FieldsFunc(p, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(refs) == 0 {
			side := "first"
			if i == 1 {
				side = "second"
			}
			return nil, fmt.Errorf("partition %q: the %s group names no node; want e.g. 1,2 / 3,4,5, or 3 for node 3 against the rest", text, side)
		}
		groups = append(groups, refs)
	}
	return groups, nil
}

// resolveGroups turns parsed groups into two disjoint lists of node indexes, in
// ascending order; a single group stands against every other node.
func resolveGroups(s *State, groups [][]string) ([2][]int, error) {
	var out [2][]int
	in := map[int]int{} // index -> group
	for g, refs := range groups {
		for _, ref := range refs {
			n, err := s.Lookup(ref)
			if err != nil {
				return out, err
			}
			if prev, ok := in[n.Index]; ok && prev != g {
				return out, fmt.Errorf("node %s (%s) is in both groups", ref, n.Name)
			}
			if _, ok := in[n.Index]; !ok {
				in[n.Index] = g
				out[g] = append(out[g], n.Index)
			}
		}
	}
	if len(groups) == 1 {
		for _, n := range s.Nodes {
			if _, ok := in[n.Index]; !ok {
				out[1] = append(out[1], n.Index)
			}
		}
		if len(out[1]) == 0 {
			return out, fmt.Errorf("the group names every node of the testnet: nothing is left on the other side")
		}
	}
	slices.Sort(out[0])
	slices.Sort(out[1])
	return out, nil
}
