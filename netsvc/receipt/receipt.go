package receipt

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
)

// Side is which end of a flow a node is.
type Side uint8

// The two ends of a flow.
const (
	// Dialer opened the stream and chose the flow ID.
	Dialer Side = 1
	// Acceptor took the stream and connected it to the target replica.
	Acceptor Side = 2
)

// String names the side.
func (s Side) String() string {
	switch s {
	case Dialer:
		return "dialer"
	case Acceptor:
		return "acceptor"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

func (s Side) valid() bool { return s == Dialer || s == Acceptor }

// MaxName bounds every name in a receipt (services, ports, depots, nodes).
const MaxName = 253

// Errors callers tell apart.
var (
	// ErrOneSided is returned (wrapped) by Verify for a receipt that lacks one end's
	// signature or carries a dispute: it proves only what one node claims.
	ErrOneSided = errors.New("receipt is signed by one end only")
	// ErrDisputed is returned (wrapped) by Exchange and Finish when the two ends'
	// views of a flow differ; the receipt returned with it is one-sided.
	ErrDisputed = errors.New("the ends of the flow disagree")
	// ErrInvalid is returned (wrapped) for a receipt or view whose fields are malformed.
	ErrInvalid = errors.New("invalid receipt")
)

// View is one flow as one end accounts for it: the fields a receipt's signatures
// cover. Counts and hashes are from the dialer's perspective at both ends.
type View struct {
	// Flow is 16 random bytes in hex, chosen by the dialer (NewFlowID).
	Flow string `json:"flow"`
	// Service, Port and Depot are the target: the service's name, the port's name in
	// its spec, and the replica (depot) the acceptor connected the stream to.
	Service string `json:"service"`
	Port    string `json:"port"`
	Depot   string `json:"depot"`
	// From is the dialing node's ID, To the accepting node's.
	From string `json:"from"`
	To   string `json:"to"`
	// FromService and FromDepot name the calling workload on the dialing node, when
	// the dialer knows it ("" for traffic from outside the network), so an audit can
	// hold flows against the manifests' flow rules.
	FromService string `json:"fromService,omitempty"`
	FromDepot   string `json:"fromDepot,omitempty"`
	// Opened and Closed bound the flow: the dialer's open time and its time of the
	// exchange, which the acceptor accepts within its MaxSkew.
	Opened time.Time `json:"opened"`
	Closed time.Time `json:"closed"`
	// BytesOut and HashOut are the payload the dialer sent; BytesIn and HashIn the
	// payload it received. Hashes are of the payload bytes in order, by HashAlg.
	BytesOut int64       `json:"bytesOut"`
	BytesIn  int64       `json:"bytesIn"`
	HashOut  ledger.Hash `json:"hashOut"`
	HashIn   ledger.Hash `json:"hashIn"`
	// HashAlg names the hash: HashBLAKE3, or none (HashSHA256) in a receipt of
	// format 1, which the dialer's version 1 HELLO asks for.
	HashAlg HashAlg `json:"hashAlg,omitempty"`
}

// Receipt is a flow's record: a view and the signatures of the ends that vouch for it.
// A complete receipt has both signatures and no dispute; a one-sided receipt has its
// holder's signature and a Dispute saying why the other is missing.
type Receipt struct {
	View
	// FromSig is the dialing node's signature over the view, ToSig the accepting
	// node's (both in domain identity.DomainReceipt over the view's canonical form).
	FromSig *identity.Signature `json:"fromSig,omitempty"`
	ToSig   *identity.Signature `json:"toSig,omitempty"`
	// Dispute is set on a one-sided receipt.
	Dispute *Dispute `json:"dispute,omitempty"`
}

// Dispute says why a receipt is one-sided.
type Dispute struct {
	// Reason is what went wrong, for people: which fields differed, or why the
	// exchange did not complete.
	Reason string `json:"reason"`
	// Peer is the other end's view as it sent it, with its signature, when one
	// arrived and verified: evidence of what that node claimed.
	Peer *Receipt `json:"peer,omitempty"`
}

// NewFlowID returns a fresh random flow ID: 16 bytes in hex.
func NewFlowID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (it aborts the process instead)
	return hex.EncodeToString(b[:])
}

// checkFlowID reports whether s is 32 lowercase hex digits.
func checkFlowID(s string) error {
	if len(s) != 32 {
		return fmt.Errorf("%w: flow ID %q: want 32 hex digits, got %d characters", ErrInvalid, clip(s), len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w: flow ID %q: want lowercase hex digits", ErrInvalid, s)
		}
	}
	return nil
}

// checkName checks a name field: printable UTF-8, at most MaxName bytes, and present
// unless optional.
func checkName(field, s string, optional bool) error {
	if s == "" {
		if optional {
			return nil
		}
		return fmt.Errorf("%w: %s is empty", ErrInvalid, field)
	}
	if len(s) > MaxName {
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalid, field, len(s), MaxName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q holds a control character", ErrInvalid, field, s)
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Check reports whether the view's fields are well formed.
func (v *View) Check() error {
	if err := checkFlowID(v.Flow); err != nil {
		return err
	}
	for _, f := range []struct {
		name, val string
		optional  bool
	}{
		{"service", v.Service, false}, {"port", v.Port, false}, {"depot", v.Depot, false},
		{"from", v.From, false}, {"to", v.To, false},
		{"fromService", v.FromService, true}, {"fromDepot", v.FromDepot, true},
	} {
		if err := checkName(f.name, f.val, f.optional); err != nil {
			return fmt.Errorf("flow %s: %w", v.Flow, err)
		}
	}
	if v.From == v.To {
		return fmt.Errorf("%w: flow %s: from and to are the same node %q", ErrInvalid, v.Flow, v.From)
	}
	if v.Opened.IsZero() || v.Closed.IsZero() {
		return fmt.Errorf("%w: flow %s: opened and closed must both be set", ErrInvalid, v.Flow)
	}
	if v.Closed.Before(v.Opened) {
		return fmt.Errorf("%w: flow %s: closed %s is before opened %s", ErrInvalid, v.Flow,
			v.Closed.Format(time.RFC3339Nano), v.Opened.Format(time.RFC3339Nano))
	}
	if v.BytesOut < 0 || v.BytesIn < 0 {
		return fmt.Errorf("%w: flow %s: negative byte count (out %d, in %d)", ErrInvalid, v.Flow, v.BytesOut, v.BytesIn)
	}
	if err := v.HashAlg.check(); err != nil {
		return fmt.Errorf("flow %s: %w", v.Flow, err)
	}
	return nil
}

// encoder builds the canonical byte strings that are signed and hashed. Every
// variable-length field is length-prefixed, so no two distinct views share an
// encoding, and times are encoded as Unix seconds and nanoseconds, so the location a
// time carries (UTC or local, after a JSON round trip) does not change it.
type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)       { e.b = append(e.b, v) }
func (e *encoder) u32(v uint32)     { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)     { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) str(s string)     { e.u32(uint32(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte)   { e.u32(uint32(len(p))); e.b = append(e.b, p...) }
func (e *encoder) fixed(p []byte)   { e.b = append(e.b, p...) }
func (e *encoder) time(t time.Time) { e.u64(uint64(t.Unix())); e.u32(uint32(t.Nanosecond())) }

// The first byte of a view's canonical form: format 1 names no hash (SHA-256, as
// receipts were signed before they named it), format 2 names it right after.
const (
	canonicalSHA256 = 1
	canonicalNamed  = 2
)

// canonical is the byte string the ends sign.
func (v *View) canonical() []byte {
	e := encoder{b: make([]byte, 0, 256)}
	if v.HashAlg == HashSHA256 {
		e.u8(canonicalSHA256)
	} else {
		e.u8(canonicalNamed)
		e.str(string(v.HashAlg))
	}
	for _, s := range []string{v.Flow, v.Service, v.Port, v.Depot, v.From, v.To, v.FromService, v.FromDepot} {
		e.str(s)
	}
	e.time(v.Opened)
	e.time(v.Closed)
	e.u64(uint64(v.BytesOut))
	e.u64(uint64(v.BytesIn))
	e.fixed(v.HashOut[:])
	e.fixed(v.HashIn[:])
	return e.b
}

// Same reports whether two views are the same account of a flow (times compared as
// instants).
func (v *View) Same(w *View) bool { return bytes.Equal(v.canonical(), w.canonical()) }

// sig returns the signature of one side and the node that made it.
func (r *Receipt) sig(s Side) (*identity.Signature, string) {
	if s == Dialer {
		return r.FromSig, r.From
	}
	return r.ToSig, r.To
}

// Complete reports whether the receipt carries both ends' signatures and no dispute.
// It does not verify them: Verify does.
func (r *Receipt) Complete() bool {
	return r.FromSig != nil && r.ToSig != nil && r.Dispute == nil
}

// Check reports whether the receipt is well formed: a valid view, at least one
// signature, and a dispute whose evidence is a single-signed view of the same flow by
// the other end. It verifies no signature.
func (r *Receipt) Check() error {
	if err := r.View.Check(); err != nil {
		return err
	}
	if r.FromSig == nil && r.ToSig == nil {
		return fmt.Errorf("%w: flow %s: no signature", ErrInvalid, r.Flow)
	}
	if r.Dispute == nil {
		return nil
	}
	if r.FromSig != nil && r.ToSig != nil {
		return fmt.Errorf("%w: flow %s: a disputed receipt carries one signature, this one two", ErrInvalid, r.Flow)
	}
	if p := r.Dispute.Peer; p != nil {
		if err := p.View.Check(); err != nil {
			return fmt.Errorf("flow %s: dispute evidence: %w", r.Flow, err)
		}
		if p.Flow != r.Flow {
			return fmt.Errorf("%w: flow %s: dispute evidence is of flow %s", ErrInvalid, r.Flow, p.Flow)
		}
		if p.Dispute != nil {
			return fmt.Errorf("%w: flow %s: dispute evidence carries a dispute of its own", ErrInvalid, r.Flow)
		}
		// The evidence is signed by the end that did not sign the receipt.
		if (r.FromSig != nil) == (p.FromSig != nil) || (r.ToSig != nil) == (p.ToSig != nil) {
			return fmt.Errorf("%w: flow %s: dispute evidence must be signed by the other end only", ErrInvalid, r.Flow)
		}
	}
	return nil
}

// VerifySide checks the signature of one side of the receipt with that node's key.
func VerifySide(r Receipt, side Side, key identity.PublicKey) error {
	if !side.valid() {
		return fmt.Errorf("verify receipt: %v is not a side", side)
	}
	sig, node := r.sig(side)
	if sig == nil {
		return fmt.Errorf("receipt flow %s: %w: no %s signature (node %s)", r.Flow, ErrOneSided, side, node)
	}
	if err := key.Verify(identity.DomainReceipt, r.View.canonical(), *sig); err != nil {
		return fmt.Errorf("receipt flow %s: %s signature (node %s): %w", r.Flow, side, node, err)
	}
	return nil
}

// Verify checks that r is a complete receipt: well formed, with no dispute, signed by
// the dialing node's key fromKey and the accepting node's key toKey. A bad signature
// is reported with identity.ErrBadSignature, a missing one with ErrOneSided.
func Verify(r Receipt, fromKey, toKey identity.PublicKey) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.Dispute != nil {
		return fmt.Errorf("receipt flow %s: %w: disputed (%s)", r.Flow, ErrOneSided, r.Dispute.Reason)
	}
	if err := VerifySide(r, Dialer, fromKey); err != nil {
		return err
	}
	return VerifySide(r, Acceptor, toKey)
}

// leafLabel separates receipt leaves from every other SHA-256 in QNet.
const leafLabel = "qnet/receipt-leaf/v1"

// Leaf is the receipt's Merkle leaf: the SHA-256 of everything it holds (view,
// signatures, dispute and its evidence), so changing any of it changes a batch root.
func (r *Receipt) Leaf() ledger.Hash {
	e := encoder{b: make([]byte, 0, 8192)}
	e.str(leafLabel)
	r.appendLeaf(&e)
	return sha256.Sum256(e.b)
}

func (r *Receipt) appendLeaf(e *encoder) {
	e.bytes(r.View.canonical())
	for _, s := range []*identity.Signature{r.FromSig, r.ToSig} {
		if s == nil {
			e.u8(0)
			continue
		}
		e.u8(1)
		e.bytes(s.Ed25519)
		e.bytes(s.MLDSA65)
	}
	if r.Dispute == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	e.str(r.Dispute.Reason)
	if r.Dispute.Peer == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	p := *r.Dispute.Peer
	p.Dispute = nil // evidence never nests (Check refuses it); do not recurse on bad input
	p.appendLeaf(e)
}

// difference is how a dialer's and an acceptor's views of a flow differ.
type difference struct {
	fields []string // one line per differing field, "field: dialer X, acceptor Y"
	out    bool     // the payload dialer -> acceptor differs
	in     bool     // the payload acceptor -> dialer differs
}

func (d difference) none() bool { return len(d.fields) == 0 }

func (d difference) String() string { return strings.Join(d.fields, "; ") }

// compare lists how the acceptor's view a differs from the dialer's d. Times within
// skew of each other count as equal (0: exactly).
func compare(d, a *View, skew time.Duration) difference {
	var out difference
	str := func(field, x, y string) {
		if x != y {
			out.fields = append(out.fields, fmt.Sprintf("%s: dialer %q, acceptor %q", field, x, y))
		}
	}
	str("flow", d.Flow, a.Flow)
	str("service", d.Service, a.Service)
	str("port", d.Port, a.Port)
	str("depot", d.Depot, a.Depot)
	str("from", d.From, a.From)
	str("to", d.To, a.To)
	str("fromService", d.FromService, a.FromService)
	str("fromDepot", d.FromDepot, a.FromDepot)
	tm := func(field string, x, y time.Time) {
		if dt := x.Sub(y).Abs(); dt > skew {
			out.fields = append(out.fields, fmt.Sprintf("%s: dialer %s, acceptor %s (%s apart)", field,
				x.Format(time.RFC3339Nano), y.Format(time.RFC3339Nano), dt))
		}
	}
	tm("opened", d.Opened, a.Opened)
	tm("closed", d.Closed, a.Closed)
	// Hashes by different algorithms say nothing about each other: then only the
	// counts tell whether the payload differs.
	sameAlg := d.HashAlg == a.HashAlg
	if !sameAlg {
		out.fields = append(out.fields, fmt.Sprintf("hashAlg: dialer %s, acceptor %s", d.HashAlg, a.HashAlg))
	}
	if d.BytesOut != a.BytesOut || sameAlg && d.HashOut != a.HashOut {
		out.out = true
		out.fields = append(out.fields, fmt.Sprintf("dialer->acceptor: dialer sent %d bytes (%s %s), acceptor received %d (%s %s)",
			d.BytesOut, d.HashAlg, d.HashOut.Short(), a.BytesOut, a.HashAlg, a.HashOut.Short()))
	}
	if d.BytesIn != a.BytesIn || sameAlg && d.HashIn != a.HashIn {
		out.in = true
		out.fields = append(out.fields, fmt.Sprintf("acceptor->dialer: acceptor sent %d bytes (%s %s), dialer received %d (%s %s)",
			a.BytesIn, a.HashAlg, a.HashIn.Short(), d.BytesIn, d.HashAlg, d.HashIn.Short()))
	}
	return out
}
