package state

import (
	"time"

	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
)

// Service is a service as the ledger has it: its current revision and who applied it.
type Service struct {
	Name     string            `json:"name"`
	Revision uint64            `json:"revision"`
	Spec     *manifest.Service `json:"spec"`
	// AppliedBy is the operator that signed the current revision.
	AppliedBy string      `json:"appliedBy"`
	TxID      ledger.Hash `json:"txId"`
	Height    uint64      `json:"height"`
	Created   time.Time   `json:"created"`
	Updated   time.Time   `json:"updated"`
	// Unschedulable says why some replicas could not be placed, if so.
	Unschedulable string `json:"unschedulable,omitempty"`
	// VIP is the service's stable address, the same on every node, from its creation
	// to its deletion (see VIPPrefix).
	VIP string `json:"vip,omitempty"`
	// Rollout is how the rollout of the newest revision stands (see CurrentRollout).
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Revision is one immutable revision of a service.
type Revision struct {
	Service   string            `json:"service"`
	Revision  uint64            `json:"revision"`
	Spec      *manifest.Service `json:"spec"`
	AppliedBy string            `json:"appliedBy"`
	TxID      ledger.Hash       `json:"txId"`
	Height    uint64            `json:"height"`
	At        time.Time         `json:"at"`
	// Cause is why the operator applied it, when they said (ledger.ServiceApply.Cause).
	Cause string `json:"cause,omitempty"`
	// Inputs are the versions of the secrets and configs the revision was made with.
	Inputs *Inputs `json:"inputs,omitempty"`
}

// Placement is a depot placed on a node, with the last status the node reported.
type Placement struct {
	ledger.Placement
	Height  uint64    `json:"height"`
	Created time.Time `json:"created"`
	// Status is the last status its node reported; nil until the first report.
	Status *ledger.DepotStatus `json:"status,omitempty"`
}

// Node is a member of the network.
type Node struct {
	ledger.NodeInfo
	Validator bool      `json:"validator"`
	Joined    time.Time `json:"joined"`
	Height    uint64    `json:"height"`
}

// TxRecord is where a transaction was committed and what came of it.
type TxRecord struct {
	ID     ledger.Hash   `json:"id"`
	Type   ledger.TxType `json:"type"`
	Height uint64        `json:"height"`
	Index  int           `json:"index"`
	// Error is set when the transaction was committed but could not take effect (for
	// example, deleting a service that does not exist).
	Error string `json:"error,omitempty"`
}

// Operator is an operator known to the network.
type Operator struct {
	ledger.Operator
}

// Tip is the last applied block.
type Tip struct {
	Network ledger.Hash `json:"network"`
	Name    string      `json:"name"`
	Height  uint64      `json:"height"`
	Hash    ledger.Hash `json:"hash"`
	Time    time.Time   `json:"time"`
}
