package receipt

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchangeBoth runs Exchange at both ends over net.Pipe with the given views.
func exchangeBoth(t *testing.T, dv, av View, dcfg, acfg Config) (dr, ar Receipt, derr, aerr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	wg.Go(func() { dr, derr = Exchange(ctx, a, Dialer, dv, dcfg) })
	ar, aerr = Exchange(ctx, b, Acceptor, av, acfg)
	wg.Wait()
	return dr, ar, derr, aerr
}

func TestExchangeAgreesWithinSkew(t *testing.T) {
	dv := testView(flowID(20), "node-a", "node-b", 10, 20)
	av := dv
	av.Opened = dv.Opened.Add(2 * time.Second) // the acceptor's clock is a little off
	av.Closed = dv.Closed.Add(-time.Second)
	dr, ar, derr, aerr := exchangeBoth(t, dv, av, config("node-a", "node-b"), config("node-b", "node-a"))
	if derr != nil || aerr != nil {
		t.Fatalf("dialer %v, acceptor %v", derr, aerr)
	}
	if dr.Leaf() != ar.Leaf() || !dr.Complete() {
		t.Fatal("the ends did not end with the same complete receipt")
	}
	if !dr.Opened.Equal(dv.Opened) || !dr.Closed.Equal(dv.Closed) {
		t.Fatal("the receipt does not carry the dialer's times")
	}
	if err := Verify(ar, pub("node-a"), pub("node-b")); err != nil {
		t.Fatal(err)
	}
}

func TestExchangeDisagrees(t *testing.T) {
	base := testView(flowID(21), "node-a", "node-b", 10, 20)
	tests := []struct {
		name   string
		change func(*View)
		reason string
	}{
		{"bytes in", func(v *View) { v.BytesIn = 19 }, "acceptor->dialer: acceptor sent 19 bytes"},
		{"hash out", func(v *View) { v.HashOut[5] ^= 1 }, "dialer->acceptor"},
		{"depot", func(v *View) { v.Depot = "db-other" }, `depot: dialer "db-7f3a", acceptor "db-other"`},
		{"close beyond skew", func(v *View) { v.Closed = v.Closed.Add(2 * DefaultMaxSkew) }, "closed: dialer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			av := base
			tt.change(&av)
			dr, ar, derr, aerr := exchangeBoth(t, base, av, config("node-a", "node-b"), config("node-b", "node-a"))
			if !errors.Is(derr, ErrDisputed) || !errors.Is(aerr, ErrDisputed) {
				t.Fatalf("dialer %v, acceptor %v; want ErrDisputed at both", derr, aerr)
			}
			for name, r := range map[string]Receipt{"dialer": dr, "acceptor": ar} {
				if r.Dispute == nil || !strings.Contains(r.Dispute.Reason, tt.reason) {
					t.Errorf("%s: dispute %+v, want a reason saying %q", name, r.Dispute, tt.reason)
				}
				if r.Dispute == nil || r.Dispute.Peer == nil {
					t.Fatalf("%s: no evidence", name)
				}
			}
			// Each end keeps its own view, signed by itself, and the peer's as evidence.
			if !dr.View.Same(&base) || !ar.View.Same(&av) {
				t.Fatal("an end did not keep its own view")
			}
			if err := VerifySide(dr, Dialer, pub("node-a")); err != nil {
				t.Fatal(err)
			}
			if err := VerifySide(*dr.Dispute.Peer, Acceptor, pub("node-b")); err != nil {
				t.Fatal(err)
			}
			if err := VerifySide(*ar.Dispute.Peer, Dialer, pub("node-a")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestExchangeForgedView has the "acceptor" answer with a view signed by another key:
// the dialer must not take it as a co-signature, nor keep it as evidence.
func TestExchangeForgedView(t *testing.T) {
	v := testView(flowID(22), "node-a", "node-b", 1, 2)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	var peerErr error
	wg.Go(func() {
		if _, _, err := readFrame(b); err != nil { // the dialer's view
			peerErr = err
			return
		}
		forged := Receipt{View: v, ToSig: sig(t, "mallory", v)}
		body, _ := json.Marshal(forged)
		_, peerErr = b.Write(appendFrame(nil, frameView, body))
	})
	r, err := Exchange(context.Background(), a, Dialer, v, config("node-a", "node-b"))
	wg.Wait()
	if peerErr != nil {
		t.Fatal(peerErr)
	}
	if !errors.Is(err, errBadSignature()) {
		t.Fatalf("got %v, want a bad signature", err)
	}
	if r.Complete() || r.ToSig != nil || r.Dispute == nil || r.Dispute.Peer != nil {
		t.Fatalf("want a one-sided receipt without evidence, got %+v", r)
	}
}

func TestExchangePeerGone(t *testing.T) {
	v := testView(flowID(23), "node-a", "node-b", 1, 2)
	a, b := net.Pipe()
	b.Close()
	r, err := Exchange(context.Background(), a, Dialer, v, config("node-a", "node-b"))
	if err == nil || !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("got %v", err)
	}
	if r.FromSig == nil || r.Dispute == nil || !strings.Contains(r.Dispute.Reason, "exchange failed") {
		t.Fatalf("want a one-sided receipt saying the exchange failed, got %+v", r)
	}
}

func TestExchangeBadArguments(t *testing.T) {
	v := testView(flowID(24), "node-a", "node-b", 1, 2)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tests := []struct {
		name string
		side Side
		v    View
		cfg  Config
		want string
	}{
		{"view names other ends", Acceptor, v, config("node-a", "node-b"), "names node-b as this node"},
		{"no side", 0, v, config("node-a", "node-b"), "not a side"},
		{"bad view", Dialer, View{}, config("node-a", "node-b"), "flow ID"},
		{"negative skew", Dialer, v, func() Config { c := config("node-a", "node-b"); c.MaxSkew = -1; return c }(), "MaxSkew"},
	}
	for _, tt := range tests {
		r, err := Exchange(context.Background(), a, tt.side, tt.v, tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || r.FromSig != nil || r.ToSig != nil {
			t.Errorf("%s: got %v (receipt %v), want an error saying %q and no receipt", tt.name, err, r.FromSig != nil, tt.want)
		}
	}
}
