// Package receipt accounts for every connection that crosses between nodes: both ends
// count and hash the bytes each way, and at the end of the stream they exchange their
// views of the flow and co-sign one receipt (hybrid signatures, package identity). A
// node keeps its receipts in an append-only log, commits each batch of them to the
// ledger as a Merkle root, and an audit of many nodes' receipts against the committed
// roots names the nodes whose accounts do not add up.
//
// # Why a frame layer
//
// A receipt can only be co-signed once both ends know the stream is over and what
// crossed it. A raw stream's close cannot carry that: after a FIN nothing more may be
// said. So a proxied stream between nodes runs inside a small frame layer (WrapDialer
// and WrapAcceptor): data frames carry the payload, an END frame is each direction's
// half-close, and after both ENDs the same stream carries the two signed views as a
// trailer. One stream per flow, no second control stream to pair up or lose.
//
// # Wire format (version 2)
//
// Every frame is a 5-byte header, then the body:
//
//	type   1 byte
//	length 4 bytes, big-endian: the body's length, at most MaxFrame (65536)
//	body   length bytes
//
// A header announcing more than MaxFrame bytes is refused before anything is read or
// allocated (ErrFrameTooLarge). Frame types:
//
//	1 HELLO   dialer -> acceptor, the first frame, once. JSON Hello: version, flow ID,
//	          target service/port/depot, from and to node IDs, the calling service and
//	          depot, the dialer's open time, and the payload hash ("blake3").
//	          Version 1 (no hash named) is what dialers from before version 2 send,
//	          and what a dialer sends whose DefaultHash is SHA-256: that flow is
//	          hashed with SHA-256 and its receipt is of format 1.
//	2 DATA    payload, 1..MaxFrame bytes. Only payload is counted and hashed.
//	3 END     empty body: the sender sends no more DATA (its half-close).
//	4 VIEW    JSON Receipt carrying only its sender's signature; sent after both ENDs.
//	5 REFUSE  acceptor -> dialer instead of any data: the flow is refused; the body is
//	          the reason, UTF-8, at most MaxReason bytes. The acceptor then closes.
//
// A stream is therefore, each direction on its own line:
//
//	dialer -> acceptor:  HELLO DATA* END             VIEW (dialer's view, its signature)
//	acceptor -> dialer:        DATA* END (or REFUSE)      VIEW (acceptor's, its signature)
//
// The dialer sends its VIEW first; the acceptor answers with its own. When the two
// views agree (counts and hashes exactly, open and close times within the MaxSkew of
// the acceptor's clock), the acceptor signs the dialer's view as it stands, so both
// ends hold the same receipt with both signatures. Otherwise each end keeps a receipt
// signed by itself alone, with a Dispute that says what differed and carries the
// peer's signed view as evidence; Audit uses that evidence to name a node that later
// shows a different account.
//
// All counts and hashes in a receipt are from the dialer's perspective: Out is what
// the dialer sent (the acceptor received), In what the dialer received.
//
// # The payload hash
//
// Each end hashes the payload each way itself, so a receipt's hashes commit both ends
// to exactly the bytes that crossed: the hash is collision resistant, and a stream
// changed anywhere gives a different one. The dialer picks it (DefaultHash) and the
// acceptor follows. On amd64 it is BLAKE3-256 (HashBLAKE3), run 16 KiB at a time on
// the CPU's AVX-512 (or AVX2) lanes by package internal/blake3, at 2.5 times the rate
// of SHA-256 with the SHA extensions: hashing every byte at both ends is most of what
// receipts cost on a bulk transfer (docs/performance.md). Elsewhere it is SHA-256,
// which arm64 runs in its own instructions and BLAKE3 only in plain Go. A receipt
// names its hash (View.HashAlg) and its signatures cover the name. SHA-256 receipts
// name none and keep the form that receipts were signed in before hashes were named
// (format 1), so those still verify and still give their batches' committed roots.
//
// # What is signed
//
// Both ends sign, in domain identity.DomainReceipt, the view's canonical form: the
// format, a byte: 1 for SHA-256, or 2 followed by the hash's name as a 4-byte
// big-endian length and the bytes ("blake3"); then flow, service, port, depot, from,
// to, fromService and fromDepot, each as a 4-byte length and the bytes, then opened
// and closed, each as 8-byte Unix seconds and 4-byte nanoseconds, then bytesOut and
// bytesIn as 8 bytes each, then hashOut and hashIn (32 bytes each). A receipt's Merkle leaf (Receipt.Leaf) is the
// SHA-256 of a label, that form, both signatures and the dispute with its evidence, so
// a batch root (ledger.MerkleRoot over the leaves in log order) commits to every byte
// a node keeps.
//
// # The log on disk
//
// A Log is a directory of receipts-NNNNNNNN.jsonl files, one JSON object a line:
// {"receipt":{...}}, {"batch":{...}} or {"refusal":{...}}. A batch record follows the
// receipts it stands for; files are cut only right after a batch record. See
// SyncPolicy for when it is forced to disk.
package receipt
