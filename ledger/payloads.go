package ledger

import (
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/manifest"
)

// Genesis is the payload of the genesis transaction: the network's name, its first
// operators and nodes, and which nodes validate. The genesis block's hash is the
// network's identity.
type Genesis struct {
	Network    string     `json:"network"`
	Created    time.Time  `json:"created"`
	Operators  []Operator `json:"operators"`
	Nodes      []NodeInfo `json:"nodes"`
	Validators []string   `json:"validators"`
}

// Operator is a person or system allowed to change what runs.
type Operator struct {
	Name string             `json:"name"`
	Key  identity.PublicKey `json:"key"`
	// TokenHash is the SHA-256 (hex) of the operator's API token; the token itself is
	// never stored anywhere but in the operator's context file.
	TokenHash string `json:"tokenHash"`
}

// NodeInfo describes a node: its keys, where it listens, and what it offers.
type NodeInfo struct {
	ID     string             `json:"id"`
	Name   string             `json:"name"`
	Key    identity.PublicKey `json:"key"`
	Addr   string             `json:"addr"`
	OS     string             `json:"os"`
	Arch   string             `json:"arch"`
	CPU    int64              `json:"cpu"`    // millicores
	Memory int64              `json:"memory"` // bytes
	Labels map[string]string  `json:"labels,omitempty"`
}

// ServiceApply creates a service or changes it (a new revision when the spec changed).
type ServiceApply struct {
	Service *manifest.Service `json:"service"`
}

// ServiceDelete removes a service and, through placement, all its depots.
type ServiceDelete struct {
	Name string `json:"name"`
}

// Placement puts one replica of a service revision on a node. Its ID is the depot's ID.
type Placement struct {
	ID       string `json:"id"`
	Service  string `json:"service"`
	Revision uint64 `json:"revision"`
	Node     string `json:"node"`
	Slot     int    `json:"slot"`
}

// PlacementSet adds and removes placements; validators decide them.
type PlacementSet struct {
	Add    []Placement `json:"add,omitempty"`
	Remove []string    `json:"remove,omitempty"`
	// Reason says why, for people reading the ledger.
	Reason string `json:"reason,omitempty"`
	// Unschedulable records, per service, why replicas could not be placed ("" once
	// they all could).
	Unschedulable map[string]string `json:"unschedulable,omitempty"`
}

// DepotState is where a depot is in its life.
type DepotState string

// Depot states.
const (
	DepotPending  DepotState = "pending"
	DepotStarting DepotState = "starting"
	DepotRunning  DepotState = "running"
	DepotReady    DepotState = "ready"
	DepotFailing  DepotState = "failing"
	DepotExited   DepotState = "exited"
)

// DepotStatus is what a node reports of one depot it runs.
type DepotStatus struct {
	ID       string         `json:"id"`
	State    DepotState     `json:"state"`
	Ready    bool           `json:"ready"`
	PID      int            `json:"pid,omitempty"`
	Ports    map[string]int `json:"ports,omitempty"`
	Restarts int            `json:"restarts"`
	ExitCode *int           `json:"exitCode,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Since    time.Time      `json:"since"`
	// Limits says which resource limits are enforced and how, or why not.
	Limits string `json:"limits,omitempty"`
}

// DepotStatusReport is a batch of status changes from one node, signed by that node.
type DepotStatusReport struct {
	Node   string        `json:"node"`
	Depots []DepotStatus `json:"depots"`
}

// NodeUpdate changes what a node offers or where it listens.
type NodeUpdate struct {
	Node NodeInfo `json:"node"`
}
