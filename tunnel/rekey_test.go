package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestRekeyKeepsStreamsWhole moves many MiB both ways on one stream across dozens of
// epochs (1 MiB or 50 ms each) while other streams open and close, and checks every
// byte arrives in order.
func TestRekeyKeepsStreamsWhole(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	for _, c := range []*Config{&dcfg, &lcfg} {
		c.RekeyBytes = 1 << 20
		c.RekeyInterval = 50 * time.Millisecond
	}
	d, l, _ := pair(t, dcfg, lcfg)
	const size = 32 << 20

	type result struct {
		sent, got [32]byte
		n         int64
		err       error
	}
	// transfer writes size bytes on s while reading what the other side sends.
	transfer := func(s net.Conn) result {
		var r result
		var wg sync.WaitGroup
		wg.Go(func() { r.got, r.n, r.err = drain(s) })
		sent, err := pump(s, size)
		if err == nil {
			err = s.Close() // a yamux stream's Close ends our side only; reads go on
		}
		wg.Wait()
		r.sent = sent
		if err != nil {
			r.err = err
		}
		return r
	}
	// The long stream is open before the others start, so no one else accepts it.
	ds, err := d.Open(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ls, err := l.Accept(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	var dres, lres result
	var wg sync.WaitGroup
	wg.Go(func() { dres = transfer(ds) })
	wg.Go(func() { lres = transfer(ls) })

	// Other streams open and close meanwhile, from both sides.
	stop := make(chan struct{})
	var churn sync.WaitGroup
	var trips atomic.Int64
	churnErr := make(chan error, 2)
	for _, pair := range [][2]*Tunnel{{d, l}, {l, d}} {
		opener, server := pair[0], pair[1]
		churn.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				errc := make(chan error, 1)
				go func() {
					s, err := server.Accept(ctxT(t))
					if err == nil {
						_, err = io.Copy(s, s)
						s.Close()
					}
					errc <- err
				}()
				if err := roundTrip(t, opener, fmt.Sprintf("churn %d", i)); err != nil {
					churnErr <- err
					return
				}
				if err := <-errc; err != nil {
					churnErr <- err
					return
				}
				trips.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	close(churnErr)
	for err := range churnErr {
		t.Fatalf("churn stream: %v", err)
	}
	for _, r := range []struct {
		name string
		res  result
		peer result
	}{{"dialer", dres, lres}, {"listener", lres, dres}} {
		if r.res.err != nil {
			t.Fatalf("%s: %v", r.name, r.res.err)
		}
		if r.res.n != size || r.res.got != r.peer.sent {
			t.Fatalf("%s received %d bytes with a different hash than the peer sent (%d bytes)", r.name, r.res.n, int64(size))
		}
	}
	// 32 MiB each way in epochs of 1 MiB: each epoch carries its MiB and what flows
	// during the next handshake, which on two busy cores is several MiB; so fewer
	// than 32 rekeys, but several.
	if ds, ls := d.Stats(), l.Stats(); ds.Rekeys < 3 || ls.Rekeys < 3 {
		t.Fatalf("rekeys: dialer %d, listener %d, want at least 3", ds.Rekeys, ls.Rekeys)
	}
	if trips.Load() == 0 {
		t.Fatal("no churn stream completed during the transfer")
	}
	if d.Err() != nil || l.Err() != nil {
		t.Fatalf("tunnel ended: %v / %v", d.Err(), l.Err())
	}
	t.Logf("rekeys: %d, churn streams: %d", d.Stats().Rekeys, trips.Load())
}

// TestListenerAsksForRekey: the dialer would never rekey on its own; the listener's
// byte limit makes it.
func TestListenerAsksForRekey(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	dcfg.RekeyInterval, dcfg.RekeyBytes = time.Hour, 1<<40
	lcfg.RekeyInterval, lcfg.RekeyBytes = time.Hour, 256<<10
	d, l, _ := pair(t, dcfg, lcfg)
	echo(t, d)
	msg := strings.Repeat("r", 100<<10)
	waitFor(t, 20*time.Second, "rekeys asked by the listener", func() bool {
		if err := roundTrip(t, l, msg); err != nil {
			t.Fatal(err)
		}
		return d.Stats().Rekeys >= 3 && l.Stats().Rekeys >= 3
	})
}

// TestListenerAsksForRekeyOnTime: the listener's interval is the shorter.
func TestListenerAsksForRekeyOnTime(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	dcfg.RekeyInterval = time.Hour
	lcfg.RekeyInterval = 20 * time.Millisecond
	d, l, _ := pair(t, dcfg, lcfg)
	waitFor(t, 20*time.Second, "timed rekeys asked by the listener", func() bool {
		return d.Epoch() >= 2 && l.Epoch() >= 2
	})
	echo(t, l)
	if err := roundTrip(t, d, "still there"); err != nil {
		t.Fatal(err)
	}
}

// TestRekeyTimer checks the default epoch of two minutes on a fake clock.
func TestRekeyTimer(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		// yamux keeps timers in a process-wide pool, where timers of a synctest bubble
		// must not meet those of other tests: the test runs alone in a child process.
		t.Parallel()
		runChild(t, "TestRekeyTimer")
		return
	}
	synctest.Test(t, func(t *testing.T) {
		a, b := testKey(t, 0), testKey(t, 1)
		peers := peersOf(a, b)
		ml := newMemListener()
		dcfg, lcfg := testConfig(a, peers, nil), testConfig(b, peers, nil)
		dcfg.DialContext = ml.dial
		l, err := Listen(lcfg, ml)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d, err := Dial(context.Background(), dcfg, "mem", Expect{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		lt, err := l.Accept(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(2*time.Minute - time.Second) // fake clock
		synctest.Wait()
		if d.Epoch() != 0 || lt.Epoch() != 0 {
			t.Fatalf("epoch %d/%d after %s, want 0", d.Epoch(), lt.Epoch(), time.Since(start))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if d.Epoch() != 1 || lt.Epoch() != 1 {
			t.Fatalf("epoch %d/%d after %s, want 1", d.Epoch(), lt.Epoch(), time.Since(start))
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if d.Epoch() != 2 || lt.Epoch() != 2 || d.Stats().Rekeys != 2 {
			t.Fatalf("epoch %d/%d after %s, want 2", d.Epoch(), lt.Epoch(), time.Since(start))
		}
		echo(t, lt)
		if err := roundTrip(t, d, "after two epochs"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRekeyFailureEndsTunnel: when the next epoch cannot be reached, the tunnel ends
// with an error that says so.
func TestRekeyFailureEndsTunnel(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	dcfg.RekeyInterval = 20 * time.Millisecond
	var dials atomic.Int32
	var nd net.Dialer
	dcfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) > 2 {
			return nil, errors.New("network unreachable (test)")
		}
		return nd.DialContext(ctx, network, addr)
	}
	d, l, _ := pair(t, dcfg, lcfg)
	<-d.Done()
	if err := d.Err(); err == nil || !strings.Contains(err.Error(), "rekey to epoch 2") || !strings.Contains(err.Error(), "network unreachable") {
		t.Fatalf("Err = %v, want the failed rekey to epoch 2", err)
	}
	<-l.Done()
	if !errors.Is(l.Err(), ErrPeerClosed) || !strings.Contains(l.Err().Error(), "rekey to epoch 2") {
		t.Fatalf("listener: Err = %v, want the peer's reason", l.Err())
	}
}

// TestRevokedPeerLosesTunnelAtRekey: a key removed from the ledger fails the next
// epoch, whichever side removed it.
func TestRevokedPeerLosesTunnelAtRekey(t *testing.T) {
	t.Parallel()
	for _, revokedBy := range []string{"listener", "dialer"} {
		t.Run("by "+revokedBy, func(t *testing.T) {
			t.Parallel()
			a, b := testKey(t, 2), testKey(t, 3)
			dpeers, lpeers := peersOf(a, b), peersOf(a, b)
			var log logSink
			dcfg, lcfg := testConfig(a, dpeers, &log), testConfig(b, lpeers, &log)
			dcfg.RekeyInterval = 20 * time.Millisecond
			d, l, _ := pair(t, dcfg, lcfg)
			waitFor(t, 10*time.Second, "a first rekey", func() bool {
				if d.Err() != nil || l.Err() != nil {
					t.Fatalf("tunnel ended before the revocation: %v / %v", d.Err(), l.Err())
				}
				return l.Epoch() >= 1
			})
			if revokedBy == "listener" {
				lpeers.Remove(a.ID())
			} else {
				dpeers.Remove(b.ID())
			}
			<-d.Done()
			<-l.Done()
			derr, lerr := d.Err(), l.Err()
			if revokedBy == "listener" {
				// The listener ends its tunnel when it refuses the rekey, and tells
				// the dialer, whose own rekey fails on the TLS alert: whichever
				// the dialer sees first is its error.
				told := errors.Is(derr, ErrPeerClosed) && strings.Contains(derr.Error(), "no longer registered")
				refused := errors.Is(derr, ErrRefused) && strings.Contains(derr.Error(), "rekey to epoch")
				if !told && !refused {
					t.Fatalf("dialer: %v, want its refused rekey", derr)
				}
				if !errors.Is(lerr, ErrUnknownPeer) || !strings.Contains(lerr.Error(), "no longer registered") {
					t.Fatalf("listener: %v, want the dialer no longer registered", lerr)
				}
			} else if !errors.Is(derr, ErrUnknownPeer) || !strings.Contains(derr.Error(), "rekey to epoch") || !strings.Contains(derr.Error(), "no longer registered") {
				t.Fatalf("dialer: %v, want the listener no longer registered at the rekey", derr)
			}
		})
	}
}

const childEnv = "QNET_TUNNEL_TEST_CHILD"

// runChild runs one test of this package in a child process.
func runChild(t *testing.T, name string) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a child process: %v\n%s", name, err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s did not run in the child process:\n%s", name, out)
	}
}

// memListener is an in-memory net.Listener whose connections are net.Pipes, for tests
// under testing/synctest.
type memListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newMemListener() *memListener {
	return &memListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (m *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case m.ch <- s:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.ch:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *memListener) Close() error {
	m.once.Do(func() { close(m.done) })
	return nil
}

func (m *memListener) Addr() net.Addr { return memAddr{} }

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem" }
