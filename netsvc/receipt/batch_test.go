package receipt

import (
	"errors"
	"slices"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

func TestBatchRootChangesWithAnyChange(t *testing.T) {
	var rs []Receipt
	for i := range 3 {
		rs = append(rs, complete(t, testView(flowID(40+i), "node-a", "node-b", int64(10*i), int64(i))))
	}
	disputed := testView(flowID(50), "node-b", "node-a", 7, 8)
	rs = append(rs, oneSided(t, disputed, Dialer, &disputed))
	b, err := NewBatch("node-a", 1, rs)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBatch(b, rs); err != nil {
		t.Fatal(err)
	}
	if b.Count != 4 || !b.First.Equal(t0) || !b.Last.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("batch %+v", b)
	}
	cloneSig := func(s *identity.Signature) *identity.Signature {
		return &identity.Signature{Ed25519: slices.Clone(s.Ed25519), MLDSA65: slices.Clone(s.MLDSA65)}
	}
	changes := map[string]func([]Receipt) []Receipt{
		"bytes out":    func(rs []Receipt) []Receipt { rs[1].BytesOut++; return rs },
		"hash in":      func(rs []Receipt) []Receipt { rs[1].HashIn[9] ^= 1; return rs },
		"flow":         func(rs []Receipt) []Receipt { rs[0].Flow = flowID(99); return rs },
		"service":      func(rs []Receipt) []Receipt { rs[2].Service = "cache"; return rs },
		"from service": func(rs []Receipt) []Receipt { rs[2].FromService = "api"; return rs },
		"opened":       func(rs []Receipt) []Receipt { rs[1].Opened = rs[1].Opened.Add(time.Nanosecond); return rs },
		"dialer signature": func(rs []Receipt) []Receipt {
			rs[0].FromSig = cloneSig(rs[0].FromSig)
			rs[0].FromSig.Ed25519[0] ^= 1
			return rs
		},
		"acceptor signature": func(rs []Receipt) []Receipt {
			rs[0].ToSig = cloneSig(rs[0].ToSig)
			rs[0].ToSig.MLDSA65[0] ^= 1
			return rs
		},
		"signature dropped": func(rs []Receipt) []Receipt { rs[0].ToSig = nil; return rs },
		"dispute added":     func(rs []Receipt) []Receipt { rs[1].Dispute = &Dispute{Reason: "x"}; return rs },
		"dispute reason": func(rs []Receipt) []Receipt {
			rs[3].Dispute = &Dispute{Reason: "other", Peer: rs[3].Dispute.Peer}
			return rs
		},
		"evidence dropped": func(rs []Receipt) []Receipt { rs[3].Dispute = &Dispute{Reason: rs[3].Dispute.Reason}; return rs },
		"evidence bytes": func(rs []Receipt) []Receipt {
			p := *rs[3].Dispute.Peer
			p.BytesIn++
			rs[3].Dispute = &Dispute{Reason: rs[3].Dispute.Reason, Peer: &p}
			return rs
		},
		"order":              func(rs []Receipt) []Receipt { rs[0], rs[1] = rs[1], rs[0]; return rs },
		"one dropped":        func(rs []Receipt) []Receipt { return rs[:3] },
		"one duplicated":     func(rs []Receipt) []Receipt { return append(rs, rs[0]) },
		"closed of the last": func(rs []Receipt) []Receipt { rs[2].Closed = rs[2].Closed.Add(time.Hour); return rs },
	}
	for name, change := range changes {
		changed := change(slices.Clone(rs))
		if Root(changed) == b.Root {
			t.Errorf("%s: the root did not change", name)
		}
		if err := VerifyBatch(b, changed); !errors.Is(err, ErrBatchMismatch) {
			t.Errorf("%s: VerifyBatch gave %v, want ErrBatchMismatch", name, err)
		}
	}
	if err := VerifyBatch(b, rs); err != nil {
		t.Fatalf("the changes touched the original receipts: %v", err)
	}
}

func TestNewBatchRefuses(t *testing.T) {
	r := complete(t, testView(flowID(60), "node-a", "node-b", 1, 1))
	if _, err := NewBatch("node-a", 1, nil); err == nil {
		t.Error("an empty batch was made")
	}
	if _, err := NewBatch("node-c", 1, []Receipt{r}); err == nil {
		t.Error("a batch of another node's flows was made")
	}
	if _, err := NewBatch("node-a", 0, []Receipt{r}); err == nil {
		t.Error("a batch with seq 0 was made")
	}
	b, _ := NewBatch("node-a", 1, []Receipt{r})
	b.Node = "node-c"
	if err := VerifyBatch(b, []Receipt{r}); !errors.Is(err, ErrBatchMismatch) {
		t.Errorf("a batch claimed for another node verified: %v", err)
	}
}
