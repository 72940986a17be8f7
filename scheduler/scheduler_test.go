package scheduler

import (
	"reflect"
	"testing"
)

func TestPlace(t *testing.T) {
	const mi = 1 << 20
	nodes := []Node{
		{ID: "a", CPU: 2000, Memory: 1024 * mi, Alive: true},
		{ID: "b", CPU: 2000, Memory: 512 * mi, Alive: true},
		{ID: "c", CPU: 2000, Memory: 4096 * mi, Alive: false},
	}
	cases := []struct {
		name   string
		placed []Placement
		req    Request
		want   Plan
	}{
		{
			name: "spread over alive nodes, most free memory first",
			req:  Request{Service: "web", Count: 3, CPU: 100, Memory: 64 * mi},
			want: Plan{Nodes: []string{"a", "b", "a"}},
		},
		{
			name:   "spread counts existing replicas",
			placed: []Placement{{ID: "x", Service: "web", Node: "a", CPU: 100, Memory: 64 * mi}},
			req:    Request{Service: "web", Count: 1, CPU: 100, Memory: 64 * mi},
			want:   Plan{Nodes: []string{"b"}},
		},
		{
			name: "never over-commits",
			req:  Request{Service: "big", Count: 3, CPU: 100, Memory: 600 * mi},
			want: Plan{Nodes: []string{"a"}, Unplaced: 2, Reason: "0/3 nodes fit: 2 insufficient memory, 1 node not alive"},
		},
		{
			name: "cpu",
			req:  Request{Service: "hot", Count: 1, CPU: 3000, Memory: mi},
			want: Plan{Unplaced: 1, Reason: "0/3 nodes fit: 2 insufficient cpu, 1 node not alive"},
		},
		{
			name:   "host ports",
			placed: []Placement{{ID: "x", Service: "other", Node: "a", HostPorts: []int{8080}}},
			req:    Request{Service: "web", Count: 2, CPU: 1, Memory: 1, HostPorts: []int{8080}},
			want:   Plan{Nodes: []string{"b"}, Unplaced: 1, Reason: "0/3 nodes fit: 2 host port 8080 taken, 1 node not alive"},
		},
		{
			name: "no nodes",
			req:  Request{Service: "web", Count: 1},
			want: Plan{Unplaced: 1, Reason: "0/0 nodes fit: the network has no nodes"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := nodes
			if c.name == "no nodes" {
				ns = nil
			}
			got := Place(ns, c.placed, c.req)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}
