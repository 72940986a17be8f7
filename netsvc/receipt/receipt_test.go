package receipt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)

// testView is a well-formed view of a flow from one node to another.
func testView(flow, from, to string, out, in int64) View {
	return View{
		Flow: flow, Service: "db", Port: "pg", Depot: "db-7f3a", From: from, To: to,
		FromService: "web", FromDepot: "web-01aa",
		Opened: t0, Closed: t0.Add(3 * time.Second),
		BytesOut: out, BytesIn: in,
		HashOut: ledger.Hash{byte(out), 1}, HashIn: ledger.Hash{byte(in), 2}, HashAlg: HashBLAKE3,
	}
}

func flowID(i int) string {
	return strings.Repeat("0", 30) + string("0123456789abcdef"[i/16]) + string("0123456789abcdef"[i%16])
}

func sig(t testing.TB, signer string, v View) *identity.Signature {
	t.Helper()
	s, err := key(signer).Sign(identity.DomainReceipt, v.canonical())
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// complete signs v by both its ends.
func complete(t testing.TB, v View) Receipt {
	t.Helper()
	return Receipt{View: v, FromSig: sig(t, v.From, v), ToSig: sig(t, v.To, v)}
}

// oneSided signs v by one end, with the other end's signed view as evidence if given.
func oneSided(t testing.TB, v View, side Side, peer *View) Receipt {
	t.Helper()
	r := Receipt{View: v, Dispute: &Dispute{Reason: "test dispute"}}
	if side == Dialer {
		r.FromSig = sig(t, v.From, v)
	} else {
		r.ToSig = sig(t, v.To, v)
	}
	if peer != nil {
		p := Receipt{View: *peer}
		if side == Dialer {
			p.ToSig = sig(t, peer.To, *peer)
		} else {
			p.FromSig = sig(t, peer.From, *peer)
		}
		r.Dispute.Peer = &p
	}
	return r
}

func TestVerify(t *testing.T) {
	v := testView(flowID(1), "node-a", "node-b", 1000, 2000)
	good := complete(t, v)
	if err := Verify(good, pub("node-a"), pub("node-b")); err != nil {
		t.Fatalf("a complete receipt: %v", err)
	}
	forged := good
	forged.ToSig = sig(t, "mallory", v)
	tests := []struct {
		name   string
		r      Receipt
		from   string
		to     string
		target error
	}{
		{"forged acceptor signature", forged, "node-a", "node-b", identity.ErrBadSignature},
		{"keys swapped", good, "node-b", "node-a", identity.ErrBadSignature},
		{"signatures swapped", Receipt{View: v, FromSig: good.ToSig, ToSig: good.FromSig}, "node-a", "node-b", identity.ErrBadSignature},
		{"acceptor signature missing", Receipt{View: v, FromSig: good.FromSig}, "node-a", "node-b", ErrOneSided},
		{"disputed", oneSided(t, v, Dialer, nil), "node-a", "node-b", ErrOneSided},
		{"no signature", Receipt{View: v}, "node-a", "node-b", ErrInvalid},
		{"truncated signature", Receipt{View: v, FromSig: good.FromSig, ToSig: &identity.Signature{Ed25519: good.ToSig.Ed25519[:10], MLDSA65: good.ToSig.MLDSA65}}, "node-a", "node-b", identity.ErrBadSignature},
	}
	for _, field := range []func(*View){
		func(v *View) { v.BytesOut++ },
		func(v *View) { v.BytesIn-- },
		func(v *View) { v.HashOut[31] ^= 1 },
		func(v *View) { v.HashIn[0] ^= 1 },
		func(v *View) { v.Depot = "db-other" },
		func(v *View) { v.FromService = "" },
		func(v *View) { v.Closed = v.Closed.Add(time.Nanosecond) },
		func(v *View) { v.Opened = v.Opened.Add(-time.Second) },
	} {
		r := good
		field(&r.View)
		tests = append(tests, struct {
			name   string
			r      Receipt
			from   string
			to     string
			target error
		}{"a field changed after signing", r, "node-a", "node-b", identity.ErrBadSignature})
	}
	for _, tt := range tests {
		err := Verify(tt.r, pub(tt.from), pub(tt.to))
		if !errors.Is(err, tt.target) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.target)
		}
	}
}

func TestViewCheck(t *testing.T) {
	good := testView(flowID(2), "node-a", "node-b", 1, 1)
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*View)
		want   string
	}{
		{"short flow ID", func(v *View) { v.Flow = "abc" }, "flow ID"},
		{"uppercase flow ID", func(v *View) { v.Flow = strings.ToUpper(flowID(255)) }, "lowercase hex"},
		{"no service", func(v *View) { v.Service = "" }, "service is empty"},
		{"no depot", func(v *View) { v.Depot = "" }, "depot is empty"},
		{"long port", func(v *View) { v.Port = strings.Repeat("p", MaxName+1) }, "port is 254 bytes"},
		{"control character", func(v *View) { v.To = "node\nb" }, "control character"},
		{"bad utf-8", func(v *View) { v.FromDepot = "\xff" }, "UTF-8"},
		{"same ends", func(v *View) { v.To = v.From }, "same node"},
		{"no open time", func(v *View) { v.Opened = time.Time{} }, "opened and closed"},
		{"closed before opened", func(v *View) { v.Closed = v.Opened.Add(-1) }, "before opened"},
		{"negative count", func(v *View) { v.BytesIn = -1 }, "negative"},
	}
	for _, tt := range tests {
		v := good
		tt.change(&v)
		err := v.Check()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want ErrInvalid saying %q", tt.name, err, tt.want)
		}
	}
}

func TestReceiptJSONRoundTrip(t *testing.T) {
	v := testView(flowID(3), "node-a", "node-b", 5, 6)
	v.Opened = v.Opened.In(time.FixedZone("X", 3600)) // a location JSON keeps as an offset
	r := oneSided(t, v, Acceptor, &v)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Receipt
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Leaf() != r.Leaf() {
		t.Fatal("the leaf changed through JSON")
	}
	if err := VerifySide(back, Acceptor, pub("node-b")); err != nil {
		t.Fatal(err)
	}
	if err := VerifySide(*back.Dispute.Peer, Dialer, pub("node-a")); err != nil {
		t.Fatalf("evidence: %v", err)
	}
}

func TestReceiptCheckEvidence(t *testing.T) {
	v := testView(flowID(4), "node-a", "node-b", 5, 6)
	r := oneSided(t, v, Dialer, &v)
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	sameSide := oneSided(t, v, Dialer, nil)
	sameSide.Dispute.Peer = &Receipt{View: v, FromSig: r.FromSig}
	other := testView(flowID(5), "node-a", "node-b", 5, 6)
	otherFlow := oneSided(t, v, Dialer, &other)
	nested := oneSided(t, v, Dialer, &v)
	nested.Dispute.Peer.Dispute = &Dispute{Reason: "x"}
	twoSigs := complete(t, v)
	twoSigs.Dispute = &Dispute{Reason: "x"}
	for name, bad := range map[string]Receipt{
		"evidence by the same end": sameSide, "evidence of another flow": otherFlow,
		"nested evidence": nested, "disputed with two signatures": twoSigs,
	} {
		if err := bad.Check(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}
