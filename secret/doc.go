// Package secret seals QNet's secrets: the cryptography and rules that keep a secret's
// plaintext off disk, out of the ledger, out of logs and out of API responses.
//
// The network has one secret key, an HPKE key pair (ML-KEM-768 + X25519, RFC 9180 with
// draft-ietf-hpke-pq). Its private half exists only in memory: the ledger holds one
// [KeyShare] per validator, the private half sealed to that validator's node HPKE key, so
// any validator can recover it and none has to write it down.
//
// An operator seals a secret to the network's public key ([Seal]) and the [Sealed] form
// goes on the ledger. When a node runs a depot whose manifest names the secret, a
// validator checks that ([Authorize]), opens the secret and seals it again to that node
// alone ([Reseal]); the [Released] form travels over the tunnel and the node opens it
// ([OpenReleased]) to give the depot an environment variable or a file on a tmpfs
// ([MountTmpfs], [WriteFile]).
//
// Every ciphertext is bound, as HPKE associated data, to what it is for: a sealed secret
// to its name, version and network key; a released one also to the node, its key and
// the placement (depot). A ciphertext moved to another name, version, node or depot
// does not open.
//
// HPKE's base mode does not say who sealed a ciphertext: anyone who knows a public key
// can seal to it. Who wrote a [Sealed] or a [KeyShare] is proved by the signed ledger
// transaction that carries it; who sent a [Released] is proved by the tunnel it came
// through. This package keeps secrets confidential; the ledger and the tunnel
// authenticate them.
//
// Plaintext moves only inside a [Value], which prints, marshals and logs as
// "[redacted NAME vN]" and can be wiped. The package does no I/O except the tmpfs
// helpers.
package secret
