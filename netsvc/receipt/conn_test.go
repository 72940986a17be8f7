package receipt

import (
	"bytes"
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

func TestFlowCoSignsReceipt(t *testing.T) {
	out, in := randomBytes(t, 3*MaxFrame+17), randomBytes(t, 70_000)
	d, a := runFlow(t, out, in, nil, nil)
	for _, e := range []end{d, a} {
		if e.ioErr != nil || e.err != nil {
			t.Fatalf("transfer: %v; finish: %v", e.ioErr, e.err)
		}
	}
	if !bytes.Equal(a.got, out) || !bytes.Equal(d.got, in) {
		t.Fatal("payload changed on the way")
	}
	if d.receipt.Leaf() != a.receipt.Leaf() {
		t.Fatalf("the ends hold different receipts:\n%+v\n%+v", d.receipt, a.receipt)
	}
	r := d.receipt
	if !r.Complete() {
		t.Fatalf("receipt not complete: %+v", r.Dispute)
	}
	if err := Verify(r, pub("node-a"), pub("node-b")); err != nil {
		t.Fatal(err)
	}
	if r.HashAlg != DefaultHash() {
		t.Errorf("receipt names hash %q, want %q", r.HashAlg, DefaultHash())
	}
	if got, want := (Tally{r.BytesOut, r.HashOut, r.HashAlg}), tallyOf(out); got != want {
		t.Errorf("out: %d %s, want %d %s", got.Bytes, got.Hash.Short(), want.Bytes, want.Hash.Short())
	}
	if got, want := (Tally{r.BytesIn, r.HashIn, r.HashAlg}), tallyOf(in); got != want {
		t.Errorf("in: %d %s, want %d %s", got.Bytes, got.Hash.Short(), want.Bytes, want.Hash.Short())
	}
	if r.From != "node-a" || r.To != "node-b" || r.Service != "db" || r.Port != "pg" || r.Depot != "db-7f3a" ||
		r.FromService != "web" || r.FromDepot != "web-01aa" || len(r.Flow) != 32 {
		t.Errorf("receipt fields: %+v", r.View)
	}
	// The audit of both ends' receipts finds nothing.
	rep := Audit(Input{Keys: publicKeys(), Nodes: map[string]Records{
		"node-a": {Pending: []Receipt{d.receipt}}, "node-b": {Pending: []Receipt{a.receipt}},
	}})
	if len(rep.Findings) != 0 || rep.Agreed != 1 {
		t.Fatalf("audit of an honest flow: %+v", rep)
	}
}

func TestFlowEmptyBothWays(t *testing.T) {
	d, a := runFlow(t, nil, nil, nil, nil)
	if d.err != nil || a.err != nil || !d.receipt.Complete() || d.receipt.BytesOut != 0 || d.receipt.HashOut != tallyOf(nil).Hash {
		t.Fatalf("empty flow: dialer %v, acceptor %v, receipt %+v", d.err, a.err, d.receipt.View)
	}
}

func TestFlowTamperedLink(t *testing.T) {
	tests := []struct {
		name         string
		dialerSide   func(net.Conn) net.Conn
		acceptorSide func(net.Conn) net.Conn
		link         string
		field        string
	}{
		// The dialer's 1st write is HELLO, its 2nd the first DATA frame.
		{"dialer to acceptor", func(c net.Conn) net.Conn { return &flipConn{Conn: c, nth: 2} }, nil, "node-a->node-b", "dialer->acceptor"},
		{"acceptor to dialer", nil, func(c net.Conn) net.Conn { return &flipConn{Conn: c, nth: 1} }, "node-b->node-a", "acceptor->dialer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, in := randomBytes(t, 5000), randomBytes(t, 6000)
			d, a := runFlow(t, out, in, tt.dialerSide, tt.acceptorSide)
			for name, e := range map[string]end{"dialer": d, "acceptor": a} {
				if !errors.Is(e.err, ErrDisputed) {
					t.Fatalf("%s: Finish returned %v, want ErrDisputed", name, e.err)
				}
				if e.receipt.Complete() || e.receipt.Dispute == nil || e.receipt.Dispute.Peer == nil {
					t.Fatalf("%s: want a one-sided receipt with the peer's view as evidence, got %+v", name, e.receipt)
				}
				if !strings.Contains(e.receipt.Dispute.Reason, tt.field) {
					t.Errorf("%s: dispute %q does not name %s", name, e.receipt.Dispute.Reason, tt.field)
				}
			}
			if err := VerifySide(d.receipt, Dialer, pub("node-a")); err != nil {
				t.Fatal(err)
			}
			if err := VerifySide(*d.receipt.Dispute.Peer, Acceptor, pub("node-b")); err != nil {
				t.Fatal(err)
			}
			rep := Audit(Input{Keys: publicKeys(), Nodes: map[string]Records{
				"node-a": {Pending: []Receipt{d.receipt}}, "node-b": {Pending: []Receipt{a.receipt}},
			}})
			if len(rep.Findings) != 1 {
				t.Fatalf("want one finding, got %+v", rep.Findings)
			}
			f := rep.Findings[0]
			if f.Kind != KindMismatch || f.Link != tt.link || f.Determined || strings.Join(f.Nodes, ",") != "node-a,node-b" || f.Flow != d.receipt.Flow {
				t.Fatalf("finding %+v, want a mismatch on link %s naming both ends", f, tt.link)
			}
		})
	}
}

func TestFlowPeerKeyWrong(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, ac := net.Pipe()
	defer dc.Close()
	defer ac.Close()
	var d end
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := WrapDialer(ctx, dc, config("node-a", "node-b"), testTarget)
		if err != nil {
			d.err = err
			return
		}
		d = serve(ctx, c, []byte("hello"))
	})
	acfg := config("node-b", "node-a")
	acfg.PeerKey = pub("mallory") // the acceptor expects another key for node-a
	c, err := WrapAcceptor(ctx, ac, acfg)
	if err != nil {
		t.Fatal(err)
	}
	a := serve(ctx, c, []byte("world"))
	wg.Wait()
	if !errors.Is(a.err, errBadSignature()) {
		t.Fatalf("acceptor: %v, want a bad signature", a.err)
	}
	if a.receipt.Complete() || a.receipt.Dispute == nil || a.receipt.Dispute.Peer != nil {
		t.Fatalf("acceptor: want one-sided without evidence, got %+v", a.receipt)
	}
	if err := VerifySide(a.receipt, Acceptor, pub("node-b")); err != nil {
		t.Fatal(err)
	}
	if d.err != nil && !errors.Is(d.err, ErrDisputed) {
		t.Fatalf("dialer: %v", d.err)
	}
}

func TestRefuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, ac := net.Pipe()
	defer dc.Close()
	var wg sync.WaitGroup
	var readErr, finErr error
	var fin Receipt
	wg.Go(func() {
		c, err := WrapDialer(ctx, dc, config("node-a", "node-b"), testTarget)
		if err != nil {
			readErr = err
			return
		}
		_, readErr = io.ReadAll(c)
		fin, finErr = c.Finish(ctx)
	})
	c, err := WrapAcceptor(ctx, ac, config("node-b", "node-a"))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Hello(); h.Service != "db" || h.Depot != "db-7f3a" || h.FromService != "web" {
		t.Fatalf("hello: %+v", h)
	}
	rf, err := c.Refuse(ctx, "flow web -> db is not allowed by any manifest")
	if err != nil {
		t.Fatal(err)
	}
	ac.Close()
	wg.Wait()
	var re *RefusedError
	if !errors.As(readErr, &re) || !errors.Is(readErr, ErrRefused) || re.Node != "node-b" || !strings.Contains(re.Reason, "not allowed") {
		t.Fatalf("dialer read: %v, want a RefusedError from node-b", readErr)
	}
	if !errors.Is(finErr, ErrRefused) || fin.FromSig != nil {
		t.Fatalf("dialer finish: %v, %+v; want the refusal and no receipt", finErr, fin)
	}
	if rf.Node != "node-b" || rf.FromNode != "node-a" || rf.FromService != "web" || rf.ToService != "db" || rf.ToPort != "pg" || rf.At.IsZero() || rf.Flow != c.Hello().Flow {
		t.Fatalf("refusal record: %+v", rf)
	}
	if _, err := c.Finish(ctx); err == nil {
		t.Fatal("Finish after Refuse gave a receipt")
	}
}

func TestRefuseCutsLongReason(t *testing.T) {
	if got := cutUTF8(strings.Repeat("é", MaxReason), MaxReason); len(got) > MaxReason || len(got) != MaxReason {
		t.Fatalf("cut to %d bytes", len(got))
	}
	if got := cutUTF8("a\xffb", 10); got != "a\uFFFDb" {
		t.Fatalf("invalid UTF-8 kept: %q", got)
	}
}

// rawPair returns an acceptor-side Conn whose peer is a raw pipe end the test writes
// frames to by hand.
func rawPair(t *testing.T) (raw net.Conn, accept func() (*Conn, error)) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, func() (*Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return WrapAcceptor(ctx, b, config("node-b", "node-a"))
	}
}

func helloFrame(t testing.TB, change func(*Hello)) []byte {
	t.Helper()
	h := Hello{Version: helloVersion, Flow: flowID(9), Service: "db", Port: "pg", Depot: "db-7f3a", From: "node-a", To: "node-b", Opened: time.Now().UTC(), Hash: HashBLAKE3}
	if change != nil {
		change(&h)
	}
	body, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return appendFrame(nil, frameHello, body)
}

func TestAcceptorChecksHello(t *testing.T) {
	tests := []struct {
		name  string
		first []byte
		want  string
	}{
		{"for another node", helloFrame(t, func(h *Hello) { h.To = "node-c" }), "is for node node-c"},
		{"from another node", helloFrame(t, func(h *Hello) { h.From = "node-c" }), "claims to come from node node-c"},
		{"other version", helloFrame(t, func(h *Hello) { h.Version = 3 }), "version 3, this node speaks 1 and 2"},
		{"version 1 naming a hash", helloFrame(t, func(h *Hello) { h.Version = 1 }), "version 1 names hash"},
		{"version 2 naming none", helloFrame(t, func(h *Hello) { h.Hash = "" }), "names no hash"},
		{"unknown hash", helloFrame(t, func(h *Hello) { h.Hash = "md5" }), `hashAlg "md5"`},
		{"SHA-256 by name", helloFrame(t, func(h *Hello) { h.Hash = "sha256" }), `hashAlg "sha256"`},
		{"bad flow ID", helloFrame(t, func(h *Hello) { h.Flow = "xyz" }), "flow ID"},
		{"no depot", helloFrame(t, func(h *Hello) { h.Depot = "" }), "depot is empty"},
		{"not JSON", appendFrame(nil, frameHello, []byte("{")), "hello"},
		{"data first", appendFrame(nil, frameData, []byte("x")), "first frame is DATA"},
		{"oversized", appendHeader(nil, frameHello, MaxFrame+1), "frame too large"},
		{"unknown type", appendHeader(nil, 9, 1), "unknown frame type 9"},
		{"closed at once", nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, accept := rawPair(t)
			go func() { // owned: ends when the pipe closes (Cleanup) or the write completes
				if tt.first != nil {
					raw.Write(tt.first)
				}
				raw.Close()
			}()
			_, err := accept()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestReadProtocolErrors(t *testing.T) {
	tests := []struct {
		name   string
		frames []byte
		target error
		want   string
	}{
		{"view before END", appendFrame(nil, frameView, []byte("{}")), ErrProtocol, "VIEW frame from the dialer while reading data"},
		{"second hello", helloFrame(t, nil), ErrProtocol, "HELLO frame"},
		{"refuse to the acceptor", appendFrame(nil, frameRefuse, []byte("no")), ErrProtocol, "REFUSE frame"},
		{"closed without END", appendFrame(nil, frameData, []byte("abc")), io.ErrUnexpectedEOF, "before its END frame"},
		{"cut mid-frame", appendHeader(nil, frameData, 10), io.ErrUnexpectedEOF, "read DATA frame"},
		{"END with a body", appendFrame(nil, frameEnd, []byte("x")), ErrProtocol, "END frame with a 1-byte body"},
		{"empty DATA", appendHeader(nil, frameData, 0), ErrProtocol, "empty DATA frame"},
		{"oversized DATA", appendHeader(nil, frameData, 1<<31), ErrFrameTooLarge, "at most 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, accept := rawPair(t)
			go func() { // owned: ends when the pipe closes
				raw.Write(append(helloFrame(t, nil), tt.frames...))
				raw.Close()
			}()
			c, err := accept()
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(c)
			if !errors.Is(err, tt.target) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %v saying %q", err, tt.target, tt.want)
			}
		})
	}
}

func TestFinishCut(t *testing.T) {
	// The acceptor takes the flow and then neither reads nor finishes: the dialer's
	// Finish must end with its context and still give a receipt signed by itself.
	dc, ac := net.Pipe()
	defer dc.Close()
	defer ac.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var c *Conn
	var err error
	var wg sync.WaitGroup
	wg.Go(func() { c, err = WrapDialer(context.Background(), dc, config("node-a", "node-b"), testTarget) })
	if _, aerr := WrapAcceptor(context.Background(), ac, config("node-b", "node-a")); aerr != nil {
		t.Fatal(aerr)
	}
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	r, err := c.Finish(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Finish: %v, want context.Canceled", err)
	}
	if r.Dispute == nil || r.FromSig == nil || r.ToSig != nil {
		t.Fatalf("want a one-sided receipt, got %+v", r)
	}
	if err := VerifySide(r, Dialer, pub("node-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Finish: %v", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("Write after Finish (which sent END) succeeded")
	}
}

func TestWrapDialerChecks(t *testing.T) {
	dc, _ := net.Pipe()
	defer dc.Close()
	bad := testTarget
	bad.Port = ""
	if _, err := WrapDialer(context.Background(), dc, config("node-a", "node-b"), bad); err == nil || !strings.Contains(err.Error(), "port is empty") {
		t.Fatalf("empty port: %v", err)
	}
	cfg := config("node-a", "node-b")
	cfg.Key = nil
	if _, err := WrapDialer(context.Background(), dc, cfg, testTarget); err == nil || !strings.Contains(err.Error(), "Key is required") {
		t.Fatalf("no key: %v", err)
	}
	cfg = config("node-a", "node-b")
	cfg.Peer = "node-a"
	if _, err := WrapDialer(context.Background(), dc, cfg, testTarget); err == nil || !strings.Contains(err.Error(), "same node") {
		t.Fatalf("self as peer: %v", err)
	}
}
