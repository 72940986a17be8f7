// Package api defines the JSON documents of QNet's HTTP API (version v1), shared by the
// server in package apiserver and the Go client in package client.
//
// Every request carries the operator's credential as "Authorization: Bearer <token>".
// Errors come back as an Error document with a 4xx or 5xx status.
package api

import (
	"qnet.dev/qnet/netsvc/receipt"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/state"
)

// Version is the API version, the first segment of every path.
const Version = "v1"

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
	// Details lists per-item problems, e.g. each error of a manifest.
	Details []string `json:"details,omitempty"`
}

// Status describes the node that answers and the network it belongs to.
type Status struct {
	Node      string    `json:"node"`
	NodeName  string    `json:"nodeName"`
	Network   string    `json:"network"`
	NetworkID string    `json:"networkId"`
	Version   string    `json:"version"`
	Leader    string    `json:"leader"`
	IsLeader  bool      `json:"isLeader"`
	Height    uint64    `json:"height"`
	Tip       string    `json:"tip"`
	TipTime   time.Time `json:"tipTime"`
	APIAddr   string    `json:"apiAddr"`
	MeshAddr  string    `json:"meshAddr"`
	// DNSAddr is where the node answers DNS for SERVICE.NETWORK.qnet ("" for nowhere).
	DNSAddr string `json:"dnsAddr,omitempty"`
	// IngressAddr is where the node takes HTTP traffic from outside for exposed
	// services ("" for nowhere).
	IngressAddr string `json:"ingressAddr,omitempty"`
	// Fingerprint is the node's key fingerprint (hex), which join tokens carry.
	Fingerprint string `json:"fingerprint"`
	CgroupLimit string `json:"cgroupLimits"`
	// Validators are the nodes that order the ledger now.
	Validators []string `json:"validators"`
}

// Token is a join token as the ledger keeps it (never its secret).
type Token struct {
	ID        string    `json:"id"`
	Expires   time.Time `json:"expires"`
	UsesLeft  int       `json:"usesLeft"`
	CreatedBy string    `json:"createdBy"`
}

// RotateResult answers a key rotation.
type RotateResult struct {
	Node   string `json:"node"`
	OldKey string `json:"oldKey"`
	NewKey string `json:"newKey"`
	// APIPin is the new pin of the node's API certificate.
	APIPin string `json:"apiPin"`
	Height uint64 `json:"height"`
}

// SubmitRequest carries signed transactions to be ordered.
type SubmitRequest struct {
	Txs []*ledger.Tx `json:"txs"`
}

// TxResult is what became of one submitted transaction.
type TxResult struct {
	ID     string `json:"id"`
	Height uint64 `json:"height,omitempty"`
	Error  string `json:"error,omitempty"`
}

// SubmitResponse answers a SubmitRequest, one result per transaction in order.
type SubmitResponse struct {
	Results []TxResult `json:"results"`
}

// Depot is one replica: where it is placed and how it is doing.
type Depot struct {
	ID       string             `json:"id"`
	Service  string             `json:"service"`
	Revision uint64             `json:"revision"`
	Node     string             `json:"node"`
	NodeName string             `json:"nodeName"`
	Slot     int                `json:"slot"`
	Created  time.Time          `json:"created"`
	Status   ledger.DepotStatus `json:"status"`
	// Addrs maps port names to where the replica answers (host:port).
	Addrs map[string]string `json:"addrs,omitempty"`
}

// Service is a service with its current revision and the state of its replicas.
type Service struct {
	Name      string            `json:"name"`
	Revision  uint64            `json:"revision"`
	AppliedBy string            `json:"appliedBy"`
	Created   time.Time         `json:"created"`
	Updated   time.Time         `json:"updated"`
	Desired   int               `json:"desired"`
	Placed    int               `json:"placed"`
	Running   int               `json:"running"`
	Ready     int               `json:"ready"`
	Spec      *manifest.Service `json:"spec"`
	// Unschedulable says why replicas could not be placed, when some could not.
	Unschedulable string  `json:"unschedulable,omitempty"`
	Depots        []Depot `json:"depots,omitempty"`
	// Rollout is how the rollout of the newest revision stands. Placed, Running and
	// Ready count the replicas of the revision it drives them to (Rollout.Revision),
	// and of revisions that differ from it only in replicas.
	Rollout *state.Rollout `json:"rollout,omitempty"`
}

// ServiceDetail is what `describe service` shows.
type ServiceDetail struct {
	Service
	Revisions []state.Revision `json:"revisions"`
	Events    []state.Event    `json:"events"`
}

// Node is a member of the network.
type Node struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Addr      string            `json:"addr"`
	OS        string            `json:"os"`
	Arch      string            `json:"arch"`
	CPU       int64             `json:"cpu"`
	Memory    int64             `json:"memory"`
	CPUUsed   int64             `json:"cpuUsed"`
	MemUsed   int64             `json:"memoryUsed"`
	Depots    int               `json:"depots"`
	Validator bool              `json:"validator"`
	Leader    bool              `json:"leader"`
	Alive     bool              `json:"alive"`
	Labels    map[string]string `json:"labels,omitempty"`
	Joined    time.Time         `json:"joined"`
}

// BlockSummary is a block without its transactions' payloads.
type BlockSummary struct {
	Height   uint64      `json:"height"`
	Hash     string      `json:"hash"`
	Prev     string      `json:"prev"`
	Time     time.Time   `json:"time"`
	Proposer string      `json:"proposer"`
	TxRoot   string      `json:"txRoot"`
	Txs      []TxSummary `json:"txs"`
}

// TxSummary is one transaction of a block, for people.
type TxSummary struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Signer string `json:"signer"`
	// By is the signer's operator name or node ID.
	By    string `json:"by"`
	Error string `json:"error,omitempty"`
	// Summary is a one-line account of the payload.
	Summary string `json:"summary"`
}

// VerifyReport is the result of re-checking a node's chain from genesis.
type VerifyReport struct {
	Node    string `json:"node"`
	OK      bool   `json:"ok"`
	Blocks  uint64 `json:"blocks"`
	Txs     int    `json:"txs"`
	Tip     string `json:"tip"`
	Network string `json:"network"`
	Error   string `json:"error,omitempty"`
}

// ImageDetail is a depot image in a node's store, with its names.
type ImageDetail struct {
	*depot.Image
	Names []string `json:"names,omitempty"`
}

// PullRequest asks a node to pull an image from its registry.
type PullRequest struct {
	Ref string `json:"ref"`
	// Name tags the image in the store besides its reference.
	Name     string `json:"name,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

// AuditReport is the result of an audit of the network's transfer receipts.
type AuditReport struct {
	receipt.Report
	// Unreachable names the nodes whose receipts could not be read, and why.
	Unreachable []string `json:"unreachable,omitempty"`
}
