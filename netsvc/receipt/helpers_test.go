package receipt

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"qnet.dev/qnet/internal/leakcheck"
	"sync"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
)

// TestMain fails the run if goroutines of the package outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m, "netsvc/receipt.") }

// Test nodes and their keys, made once: ML-DSA key generation is not free.
var testKeys = sync.OnceValue(func() map[string]*identity.Key {
	keys := map[string]*identity.Key{}
	for _, n := range []string{"node-a", "node-b", "node-c", "mallory"} {
		k, err := identity.Generate(false)
		if err != nil {
			panic(err)
		}
		keys[n] = k
	}
	return keys
})

func key(name string) *identity.Key { return testKeys()[name] }

func pub(name string) identity.PublicKey { return key(name).Public() }

// publicKeys is the ledger's view of the test nodes' keys (mallory is not a node).
func publicKeys() map[string]identity.PublicKey {
	return map[string]identity.PublicKey{"node-a": pub("node-a"), "node-b": pub("node-b"), "node-c": pub("node-c")}
}

func config(self, peer string) Config {
	return Config{Self: self, Key: key(self), Peer: peer, PeerKey: pub(peer)}
}

var testTarget = Target{Service: "db", Port: "pg", Depot: "db-7f3a", FromService: "web", FromDepot: "web-01aa"}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// tallyOf is the tally of b by DefaultHash, computed in one go by the reference
// implementation (not the package's own streaming hasher).
func tallyOf(b []byte) Tally {
	if DefaultHash() == HashSHA256 {
		return tallySHA256(b)
	}
	return Tally{Bytes: int64(len(b)), Hash: ledger.Hash(blake3.Sum256(b)), Alg: HashBLAKE3}
}

// tallySHA256 is the tally of b in a flow of format 1.
func tallySHA256(b []byte) Tally {
	return Tally{Bytes: int64(len(b)), Hash: ledger.Hash(sha256.Sum256(b)), Alg: HashSHA256}
}

// flipConn flips the last byte of its nth Write (counting from 1): a link that
// corrupts one frame's payload one way.
type flipConn struct {
	net.Conn
	mu     sync.Mutex
	nth, n int
}

func (c *flipConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	flip := c.n == c.nth
	c.mu.Unlock()
	if flip {
		q := append([]byte(nil), p...)
		q[len(q)-1] ^= 0x01
		return c.Conn.Write(q)
	}
	return c.Conn.Write(p)
}

// end is one end's outcome of a flow.
type end struct {
	got     []byte
	receipt Receipt
	err     error // of Finish
	ioErr   error // of the data transfer
}

// serve does what a proxy does with one end of a flow: send everything and half-close,
// read to the peer's END at the same time, then finish.
func serve(ctx context.Context, c *Conn, send []byte) end {
	var out end
	var werr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, werr = c.Write(send); werr == nil {
			werr = c.CloseWrite()
		}
	})
	got, rerr := io.ReadAll(c)
	wg.Wait()
	out.got = got
	if werr != nil || rerr != nil {
		out.ioErr = fmt.Errorf("write: %v, read: %v", werr, rerr)
	}
	out.receipt, out.err = c.Finish(ctx)
	return out
}

// runFlow runs a whole flow from node-a (dialer) to node-b (acceptor) over net.Pipe;
// wrapDialerSide may corrupt what the dialer's side sends, wrapAcceptorSide what the
// acceptor's side sends.
func runFlow(t *testing.T, out, in []byte, wrapDialerSide, wrapAcceptorSide func(net.Conn) net.Conn) (d, a end) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, ac := net.Pipe()
	defer dc.Close()
	defer ac.Close()
	var dSide, aSide net.Conn = dc, ac
	if wrapDialerSide != nil {
		dSide = wrapDialerSide(dc)
	}
	if wrapAcceptorSide != nil {
		aSide = wrapAcceptorSide(ac)
	}
	var wg sync.WaitGroup
	var derr error
	wg.Go(func() {
		c, err := WrapDialer(ctx, dSide, config("node-a", "node-b"), testTarget)
		if err != nil {
			derr = err
			dc.Close()
			return
		}
		d = serve(ctx, c, out)
	})
	c, err := WrapAcceptor(ctx, aSide, config("node-b", "node-a"))
	if err != nil {
		ac.Close()
		wg.Wait()
		t.Fatalf("accept: %v (dialer: %v)", err, derr)
	}
	a = serve(ctx, c, in)
	wg.Wait()
	if derr != nil {
		t.Fatalf("dial: %v", derr)
	}
	return d, a
}

func errBadSignature() error { return identity.ErrBadSignature }
