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
	ID   string             `json:"id"`
	Name string             `json:"name"`
	Key  identity.PublicKey `json:"key"`
	Addr string             `json:"addr"`
	// Mesh is where the node's tunnel listener is reached (host:port).
	Mesh   string            `json:"mesh,omitempty"`
	OS     string            `json:"os"`
	Arch   string            `json:"arch"`
	CPU    int64             `json:"cpu"`    // millicores
	Memory int64             `json:"memory"` // bytes
	Labels map[string]string `json:"labels,omitempty"`
}

// ServiceApply creates a service or changes it (a new revision when the spec changed).
type ServiceApply struct {
	Service *manifest.Service `json:"service"`
	// Cause, optional, says why the operator applied it ("undo to revision 2",
	// "raise the cache size"); qnet rollout history shows it.
	Cause string `json:"cause,omitempty"`
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

// TokenCreate registers a join token. Only the hash of its secret is on the ledger; the
// secret travels in the token string the operator hands to the new node's owner.
type TokenCreate struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secretHash"`
	Expires    time.Time `json:"expires"`
	Uses       int       `json:"uses"`
}

// NodeJoin admits a node: a registered node that checked the newcomer's token secret
// vouches for it, and the newcomer's public keys are recorded.
type NodeJoin struct {
	Node  NodeInfo `json:"node"`
	Token string   `json:"token"`
}

// NodeRemove revokes a node: its keys are refused from the block on.
type NodeRemove struct {
	Node string `json:"node"`
}

// NodeRotate replaces a node's keys. It is signed by the node's current key, and Proof
// is the new key's signature (domain identity.DomainTx) over RotationMessage, so the new
// key's holder agreed.
type NodeRotate struct {
	Node  string             `json:"node"`
	Key   identity.PublicKey `json:"key"`
	Proof identity.Signature `json:"proof"`
}

// ValidatorsSet names the nodes that validate (order blocks) from now on.
type ValidatorsSet struct {
	Validators []string `json:"validators"`
}

// ReceiptBatch commits a batch of a node's transfer receipts: the Merkle root of the
// receipts' leaves, in the order the node logged them. The receipts stay with the node
// (and its peers, which co-signed them) for audit; the root makes them tamper-evident.
type ReceiptBatch struct {
	Node string `json:"node"`
	// Seq numbers the node's batches from 1, without gaps.
	Seq   uint64 `json:"seq"`
	Root  Hash   `json:"root"`
	Count int    `json:"count"`
	// First is the earliest open time of the receipts, Last the latest close time.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}
