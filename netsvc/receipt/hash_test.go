package receipt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

// canonicalByHand is a view's canonical form as the package comment lays it out,
// written independently of the encoder: format 1 for SHA-256, format 2 naming the hash.
func canonicalByHand(v View) []byte {
	var b []byte
	str := func(s string) { b = binary.BigEndian.AppendUint32(b, uint32(len(s))); b = append(b, s...) }
	tm := func(t time.Time) {
		b = binary.BigEndian.AppendUint64(b, uint64(t.Unix()))
		b = binary.BigEndian.AppendUint32(b, uint32(t.Nanosecond()))
	}
	if v.HashAlg == HashSHA256 {
		b = append(b, 1)
	} else {
		b = append(b, 2)
		str(string(v.HashAlg))
	}
	for _, s := range []string{v.Flow, v.Service, v.Port, v.Depot, v.From, v.To, v.FromService, v.FromDepot} {
		str(s)
	}
	tm(v.Opened)
	tm(v.Closed)
	b = binary.BigEndian.AppendUint64(b, uint64(v.BytesOut))
	b = binary.BigEndian.AppendUint64(b, uint64(v.BytesIn))
	b = append(b, v.HashOut[:]...)
	return append(b, v.HashIn[:]...)
}

// TestCanonicalFormats pins both canonical forms: format 1 must stay byte for byte
// what receipts of format 1 were signed over, or they would no longer verify.
func TestCanonicalFormats(t *testing.T) {
	v := testView(flowID(7), "node-a", "node-b", 123, 456)
	for _, alg := range []HashAlg{HashSHA256, HashBLAKE3} {
		v.HashAlg = alg
		if got, want := v.canonical(), canonicalByHand(v); !bytes.Equal(got, want) {
			t.Errorf("%s: canonical form\n%x\nwant\n%x", alg, got, want)
		}
	}
}

// TestFormat1ReceiptStillVerifies reads a receipt of format 1 as a log written before
// receipts named their hash holds it (no hashAlg in its JSON), and checks that it
// verifies and that its signatures bind the algorithm: naming another one breaks them.
func TestFormat1ReceiptStillVerifies(t *testing.T) {
	v := testView(flowID(8), "node-a", "node-b", 10, 20)
	v.HashAlg = HashSHA256
	r := complete(t, v)
	line, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(line, []byte("hashAlg")) {
		t.Fatalf("a format 1 receipt names its hash: %s", line)
	}
	var back Receipt
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if err := Verify(back, pub("node-a"), pub("node-b")); err != nil {
		t.Fatalf("format 1 receipt: %v", err)
	}
	if back.Leaf() != r.Leaf() {
		t.Fatal("format 1 receipt's leaf changed in a JSON round trip")
	}
	back.HashAlg = HashBLAKE3
	if err := Verify(back, pub("node-a"), pub("node-b")); !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("format 1 receipt relabelled as BLAKE3: %v, want a bad signature", err)
	}
	back.HashAlg = "md5"
	if err := back.Check(); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `hashAlg "md5"`) {
		t.Fatalf("unknown hash: %v", err)
	}
}

// TestFlowFromVersion1Dialer runs a flow whose dialer speaks HELLO version 1
// (Config.Format1), as a node from before receipts named their hash does: its HELLO
// has no hash, the acceptor hashes with SHA-256, and both ends co-sign a receipt of
// format 1.
func TestFlowFromVersion1Dialer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, ac := net.Pipe()
	defer dc.Close()
	defer ac.Close()
	out, in := randomBytes(t, 70_001), randomBytes(t, 33_333)
	var d end
	var derr error
	var wg sync.WaitGroup
	wg.Go(func() {
		cfg := config("node-a", "node-b")
		cfg.Format1 = true
		c, err := WrapDialer(ctx, dc, cfg, testTarget)
		if err != nil {
			derr = err
			dc.Close()
			return
		}
		d = serve(ctx, c, out)
	})
	rec := &recordConn{Conn: ac}
	c, err := WrapAcceptor(ctx, rec, config("node-b", "node-a"))
	if err != nil {
		dc.Close()
		wg.Wait()
		t.Fatalf("accept: %v (dialer: %v)", err, derr)
	}
	// What the acceptor read first is the HELLO of the version before: no hash.
	fh, body, err := readFrame(bytes.NewReader(rec.first()))
	if err != nil || fh.typ != frameHello {
		t.Fatalf("hello: %v, %v", fh, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || raw["v"] != float64(1) || raw["hash"] != nil {
		t.Fatalf("a version 1 hello: %s (%v)", body, err)
	}
	a := serve(ctx, c, in)
	wg.Wait()
	if derr != nil || d.err != nil || a.err != nil || d.ioErr != nil || a.ioErr != nil {
		t.Fatalf("dialer: %v %v %v; acceptor: %v %v", derr, d.err, d.ioErr, a.err, a.ioErr)
	}
	r := a.receipt
	if err := Verify(r, pub("node-a"), pub("node-b")); err != nil {
		t.Fatal(err)
	}
	if r.HashAlg != HashSHA256 || r.View.canonical()[0] != 1 || d.receipt.Leaf() != r.Leaf() {
		t.Fatalf("receipt of a version 1 flow: hash %q, format %d; want SHA-256, format 1, the same at both ends", r.HashAlg, r.View.canonical()[0])
	}
	if got := (Tally{r.BytesOut, r.HashOut, r.HashAlg}); got != tallySHA256(out) {
		t.Errorf("out: %+v, want %+v", got, tallySHA256(out))
	}
	if got := (Tally{r.BytesIn, r.HashIn, r.HashAlg}); got != tallySHA256(in) {
		t.Errorf("in: %+v, want %+v", got, tallySHA256(in))
	}
}

// TestCompareHashAlg: views hashed by different algorithms differ in that, and their
// hashes are not compared with each other; their counts still are.
func TestCompareHashAlg(t *testing.T) {
	d := testView(flowID(9), "node-a", "node-b", 5, 6)
	a := d
	a.HashAlg = HashSHA256
	diff := compare(&d, &a, 0)
	if len(diff.fields) != 1 || !strings.Contains(diff.String(), "hashAlg: dialer blake3, acceptor sha256") || diff.out || diff.in {
		t.Fatalf("different algorithms, same counts: %+v", diff)
	}
	a.BytesIn = 7
	if diff := compare(&d, &a, 0); !diff.in || diff.out {
		t.Fatalf("different algorithms and counts in: %+v", diff)
	}
}

// recordConn keeps the first bytes read through it.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (c *recordConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if len(c.buf) < 4096 {
		c.buf = append(c.buf, p[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

func (c *recordConn) first() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf)
}
