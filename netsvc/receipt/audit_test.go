package receipt

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

// ledgerFixture builds nodes' logs and the ledger's committed batches.
type ledgerFixture struct {
	t         *testing.T
	nodes     map[string]Records
	committed []Batch
}

func newFixture(t *testing.T, nodes ...string) *ledgerFixture {
	f := &ledgerFixture{t: t, nodes: map[string]Records{}}
	for _, n := range nodes {
		f.nodes[n] = Records{}
	}
	return f
}

// seal puts rs in node's log as its next batch; onLedger says whether the batch
// reaches the ledger.
func (f *ledgerFixture) seal(node string, onLedger bool, rs ...Receipt) Batch {
	rec := f.nodes[node]
	b, err := NewBatch(node, uint64(len(rec.Batches)+1), rs)
	if err != nil {
		f.t.Fatal(err)
	}
	rec.Batches = append(rec.Batches, Logged{Batch: b, Receipts: rs})
	f.nodes[node] = rec
	if onLedger {
		f.committed = append(f.committed, b)
	}
	return b
}

func (f *ledgerFixture) pending(node string, rs ...Receipt) {
	rec := f.nodes[node]
	rec.Pending = append(rec.Pending, rs...)
	f.nodes[node] = rec
}

func (f *ledgerFixture) input() Input {
	return Input{Keys: publicKeys(), Nodes: f.nodes, Committed: f.committed}
}

func findingsOf(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		s := fmt.Sprintf("%s %s %s", f.Kind, flowName(f.Flow), strings.Join(f.Nodes, ","))
		if f.Determined {
			s += " determined"
		}
		if f.Link != "" {
			s += " link " + f.Link
		}
		out = append(out, s)
	}
	return out
}

// flowName shortens the test flow IDs to "f<n>".
func flowName(id string) string {
	for i := range 256 {
		if id == flowID(i) {
			return fmt.Sprintf("f%d", i)
		}
	}
	if id == "" {
		return "-"
	}
	return id
}

func TestAudit(t *testing.T) {
	v1 := testView(flowID(1), "node-a", "node-b", 100, 200)
	v2 := testView(flowID(2), "node-a", "node-b", 300, 400)
	lessOut := v1
	lessOut.BytesOut, lessOut.HashOut[0] = 99, 0xee
	lessIn := v1
	lessIn.BytesIn = 199
	bothWays := lessOut
	bothWays.HashIn[3] = 7
	vc := testView(flowID(3), "node-a", "node-c", 1, 1)

	tests := []struct {
		name     string
		build    func(f *ledgerFixture)
		want     []string
		agreed   int
		keysLess string // a node whose key the audit lacks
	}{
		{"both ends hold the same receipt", func(f *ledgerFixture) {
			f.seal("node-a", true, complete(t, v1), complete(t, v2))
			f.seal("node-b", true, complete(t, v2))
			f.seal("node-b", true, complete(t, v1))
		}, nil, 2, ""},
		{"pending receipts cross-check without a commit", func(f *ledgerFixture) {
			f.pending("node-a", complete(t, v1))
			f.pending("node-b", complete(t, v1))
		}, nil, 1, ""},
		{"one-sided receipts that agree", func(f *ledgerFixture) {
			f.pending("node-a", oneSided(t, v1, Dialer, nil))
			f.pending("node-b", oneSided(t, v1, Acceptor, nil))
		}, nil, 0, ""},
		{"acceptor lost a co-signed receipt", func(f *ledgerFixture) {
			f.seal("node-a", true, complete(t, v1))
		}, []string{"missing f1 node-b determined"}, 0, ""},
		{"only the dialer's word", func(f *ledgerFixture) {
			f.seal("node-a", true, oneSided(t, v1, Dialer, nil))
		}, []string{"missing f1 node-a,node-b"}, 0, ""},
		{"only the dialer's word, with the acceptor's signed view", func(f *ledgerFixture) {
			f.seal("node-a", true, oneSided(t, v1, Dialer, &lessOut))
		}, []string{"mismatch f1 node-a,node-b link node-a->node-b", "missing f1 node-b determined"}, 0, ""},
		{"payload differs dialer to acceptor", func(f *ledgerFixture) {
			f.pending("node-a", oneSided(t, v1, Dialer, &lessOut))
			f.pending("node-b", oneSided(t, lessOut, Acceptor, &v1))
		}, []string{"mismatch f1 node-a,node-b link node-a->node-b"}, 0, ""},
		{"payload differs acceptor to dialer", func(f *ledgerFixture) {
			f.pending("node-a", oneSided(t, v1, Dialer, &lessIn))
			f.pending("node-b", oneSided(t, lessIn, Acceptor, &v1))
		}, []string{"mismatch f1 node-a,node-b link node-b->node-a"}, 0, ""},
		{"payload differs both ways", func(f *ledgerFixture) {
			f.pending("node-a", oneSided(t, v1, Dialer, nil))
			f.pending("node-b", oneSided(t, bothWays, Acceptor, nil))
		}, []string{"mismatch f1 node-a,node-b link node-a<->node-b"}, 0, ""},
		{"dialer rewrote a co-signed receipt", func(f *ledgerFixture) {
			f.pending("node-a", oneSided(t, lessOut, Dialer, nil))
			f.pending("node-b", complete(t, v1))
		}, []string{"equivocation f1 node-a determined"}, 0, ""},
		{"acceptor changed its story after the dispute", func(f *ledgerFixture) {
			f.pending("node-a", oneSided(t, v1, Dialer, &lessOut))  // b told a: lessOut
			f.pending("node-b", oneSided(t, lessIn, Acceptor, &v1)) // b's log says lessIn
		}, []string{"equivocation f1 node-b determined"}, 0, ""},
		{"forged co-signature", func(f *ledgerFixture) {
			r := complete(t, v1)
			r.FromSig = sig(t, "mallory", v1)
			f.pending("node-b", r)
		}, []string{"bad-signature f1 node-b determined"}, 0, ""},
		{"corrupt signature beside an honest copy", func(f *ledgerFixture) {
			f.pending("node-a", complete(t, v1))
			r := complete(t, v1)
			r.ToSig = &identity.Signature{Ed25519: r.ToSig.Ed25519, MLDSA65: slices.Clone(r.ToSig.MLDSA65)}
			r.ToSig.MLDSA65[100] ^= 1
			f.pending("node-b", r)
		}, []string{"bad-signature f1 node-b determined"}, 0, ""},
		{"holder did not sign", func(f *ledgerFixture) {
			f.pending("node-b", oneSided(t, v1, Dialer, nil))
		}, []string{"bad-signature f1 node-b determined"}, 0, ""},
		{"forged evidence", func(f *ledgerFixture) {
			r := oneSided(t, v1, Dialer, &lessOut)
			r.Dispute.Peer.ToSig = sig(t, "mallory", lessOut)
			f.pending("node-a", r)
		}, []string{"bad-signature f1 node-a determined"}, 0, ""},
		{"node with no known key", func(f *ledgerFixture) {
			f.pending("node-a", complete(t, vc))
		}, []string{"bad-signature f3 node-a,node-c"}, 0, "node-c"},
		{"receipt of someone else's flow", func(f *ledgerFixture) {
			f.pending("node-a", complete(t, v1))
			f.pending("node-b", complete(t, v1))
			f.pending("node-c", complete(t, v1))
		}, []string{"stray f1 node-c determined"}, 1, ""},
		{"batch not on the ledger", func(f *ledgerFixture) {
			f.seal("node-a", true, complete(t, v1))
			f.seal("node-b", false, complete(t, v1))
		}, []string{"uncommitted f1 node-b determined"}, 1, ""},
		{"receipt dropped after commit", func(f *ledgerFixture) {
			f.seal("node-a", true, complete(t, v1), complete(t, v2))
			f.seal("node-b", true, complete(t, v1), complete(t, v2))
			rec := f.nodes["node-b"]
			rec.Batches[0].Receipts = rec.Batches[0].Receipts[:1]
			f.nodes["node-b"] = rec
		}, []string{"missing f2 node-b determined", "uncommitted f1 node-b determined"}, 1, ""},
		{"committed batch withheld", func(f *ledgerFixture) {
			f.seal("node-a", true, complete(t, v1))
			f.seal("node-b", true, complete(t, v1))
			rec := f.nodes["node-a"]
			rec.Batches = nil
			f.nodes["node-a"] = rec
		}, []string{"missing f1 node-a determined", "withheld - node-a determined"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "node-a", "node-b")
			tt.build(f)
			in := f.input()
			if tt.keysLess != "" {
				delete(in.Keys, tt.keysLess)
			}
			rep := Audit(in)
			if got := findingsOf(rep); !slices.Equal(got, tt.want) {
				t.Fatalf("findings:\n  got  %q\n  want %q\n%+v", got, tt.want, rep.Findings)
			}
			if rep.Agreed != tt.agreed {
				t.Errorf("agreed %d, want %d", rep.Agreed, tt.agreed)
			}
			for _, f := range rep.Findings {
				if f.Detail == "" {
					t.Errorf("finding %s has no detail", f.Kind)
				}
			}
		})
	}
}

func TestAuditFaultyAndRefusals(t *testing.T) {
	v1 := testView(flowID(1), "node-a", "node-b", 100, 200)
	f := newFixture(t, "node-a", "node-b")
	f.seal("node-a", true, complete(t, v1))
	late := Refusal{Node: "node-b", Flow: flowID(7), FromNode: "node-a", FromService: "web", ToService: "db", At: t0.Add(time.Hour), Reason: "flow web -> db not allowed"}
	early := Refusal{Node: "node-a", FromService: "ingress", ToService: "admin", At: t0, Reason: "port not exposed"}
	rec := f.nodes["node-b"]
	rec.Refusals = []Refusal{late}
	f.nodes["node-b"] = rec
	rec = f.nodes["node-a"]
	rec.Refusals = []Refusal{early}
	f.nodes["node-a"] = rec
	rep := Audit(f.input())
	if got := rep.Faulty(); !slices.Equal(got, []string{"node-b"}) {
		t.Errorf("faulty %v, want node-b", got)
	}
	if len(rep.Refusals) != 2 || rep.Refusals[0].Node != "node-a" || rep.Refusals[1].Reason != late.Reason {
		t.Fatalf("refusals not listed in time order: %+v", rep.Refusals)
	}
	if rep.Flows != 1 {
		t.Errorf("flows %d, want 1", rep.Flows)
	}
}
