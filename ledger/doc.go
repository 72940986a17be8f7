// Package ledger defines QNet's signed, hash-chained ledger: transactions signed by the
// operator or node that issued them, blocks that chain by hash and commit to their
// transactions with a Merkle root, and the pure checks that decide whether a block may
// extend a chain. It does no I/O: the state store supplies what was committed before
// through the ChainState interface, and Verify re-checks a whole chain from genesis.
package ledger
