// Package state is QNet's replicated state store: the chain of blocks and what they add
// up to (keys, nodes, services and their revisions, placements, depot status), kept in a
// bbolt file. Every node applies the same blocks in the same order and so holds the same
// state; ApplyBlock is the ledger's state machine and is deterministic.
//
// Readers get consistent snapshots through View and wait for change with Watch.
package state
