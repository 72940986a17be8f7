package tunnel

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

// rawConn speaks the tunnel protocol by hand after a real TLS handshake, to send
// what a correct dialer never would.
type rawConn struct {
	tc       *tls.Conn
	e        *endpoint
	ekm      []byte
	listener [32]byte // the listener's certificate key fingerprint
}

func rawDial(t *testing.T, key *identity.Key, addr string) *rawConn {
	t.Helper()
	e, err := newEndpoint(testConfig(key, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var cert peerCert
	tc := tls.Client(conn, e.tlsConfig(e.me.Load(), &cert, func(ed25519.PublicKey) error { return nil }))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("raw TLS handshake: %v", err)
	}
	ekm, err := exporter(tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &rawConn{tc: tc, e: e, ekm: ekm, listener: cert.fp}
}

// hello returns a correctly signed dialer binding for this session.
func (r *rawConn) hello(t *testing.T, kind byte, tunnel [16]byte, epoch uint64) []byte {
	b, err := r.e.ownBinding(r.e.me.Load(), roleDialer, kind, tunnel, epoch, r.ekm, r.e.me.Load().certFP, r.listener)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *rawConn) send(t *testing.T, b []byte) {
	if _, err := r.tc.Write(b); err != nil {
		t.Fatalf("raw write: %v", err)
	}
}

// closeReason reads until the listener's close frame and returns its reason.
func (r *rawConn) closeReason(t *testing.T) string {
	t.Helper()
	for {
		h, p, err := readControl(r.tc)
		if err != nil {
			t.Fatalf("no close frame from the listener: %v", err)
		}
		if h.typ == frameClose {
			reason, _ := decodeClose(p)
			return reason
		}
	}
}

func randomID() [16]byte {
	var id [16]byte
	rand.Read(id[:])
	return id
}

// TestBadInputRefused throws at the tunnel port what a broken or hostile peer might,
// while an established tunnel carries traffic: each is refused and logged, and neither
// the listener nor the tunnel notices.
func TestBadInputRefused(t *testing.T) {
	t.Parallel()
	var log logSink
	a, b, c := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	peers := peersOf(a, b, c)
	lcfg := testConfig(b, peers, &log)
	d, l, ln := pair(t, testConfig(a, peers, nil), lcfg)
	addr := ln.Addr().String()

	// Traffic on the established tunnel all along.
	echo(t, l)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var trafficErr error
	trips := 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if trafficErr = roundTrip(t, d, strings.Repeat("t", 10000)); trafficErr != nil {
				return
			}
			trips++
		}
	})

	refusedFor := func(name, want string) {
		t.Helper()
		waitFor(t, 10*time.Second, name+" refused in the log", func() bool {
			return log.has("tunnel connection refused", want)
		})
	}

	t.Run("garbage", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 4096)
		rand.Read(junk)
		conn.Write(junk)
		io.Copy(io.Discard, conn) // the listener closes it
		conn.Close()
		refusedFor("garbage", "TLS handshake")
	})
	t.Run("truncated TLS record", func(t *testing.T) {
		n := log.count("tunnel connection refused", "TLS handshake")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a ClientHello record header, cut
		conn.Close()
		waitFor(t, 10*time.Second, "the refusal", func() bool {
			return log.count("tunnel connection refused", "TLS handshake") > n
		})
	})

	frames := []struct {
		name   string
		frames func(r *rawConn) []byte
		log    string // what the listener's log names
	}{
		{"oversized frame", func(*rawConn) []byte { return []byte{frameHello, 0xff, 0xff, 0xff} }, "hello frame of 16777215 bytes"},
		{"unknown frame type", func(*rawConn) []byte { return []byte{0x7f, 0, 0, 0} }, "unknown frame type 127"},
		{"data before binding", func(*rawConn) []byte { return appendFrame(nil, frameData, []byte("x")) }, "data frame before the tunnel is established"},
		{"malformed binding", func(*rawConn) []byte { return appendFrame(nil, frameHello, []byte("not a binding")) }, "binding message"},
		{"listener's role", func(r *rawConn) []byte {
			bb, _ := r.e.ownBinding(r.e.me.Load(), roleListener, 0, [16]byte{}, 0, r.ekm, r.e.me.Load().certFP, r.listener)
			return appendFrame(nil, frameHello, bb)
		}, "binding of role 2"},
		{"rekey of an unknown tunnel", func(r *rawConn) []byte {
			return appendFrame(nil, frameHello, r.hello(t, kindRekey, randomID(), 1))
		}, "no such tunnel here"},
		{"rekey of another node's tunnel", func(r *rawConn) []byte {
			return appendFrame(nil, frameHello, r.hello(t, kindRekey, d.id, 1))
		}, "but it belongs to node"},
	}
	for _, tc := range frames {
		t.Run(tc.name, func(t *testing.T) {
			r := rawDial(t, c, addr)
			r.send(t, tc.frames(r))
			refusedFor(tc.name, tc.log)
		})
	}

	// Established tunnels that go bad end alone.
	for _, tc := range []struct {
		name  string
		frame []byte
		err   error
		msg   string
	}{
		{"multiplexer garbage", appendFrame(nil, frameData, []byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}), ErrConnLost, "Invalid protocol version: 9"},
		{"oversized data frame", []byte{frameData, 0xff, 0xff, 0xff}, ErrProtocol, "data frame of 16777215 bytes"},
		{"hello in the tunnel", appendFrame(nil, frameHello, []byte{1}), ErrProtocol, "hello frame inside an established tunnel"},
	} {
		t.Run("established, then "+tc.name, func(t *testing.T) {
			r := rawDial(t, c, addr)
			r.send(t, appendFrame(nil, frameHello, r.hello(t, kindOpen, randomID(), 0)))
			if h, _, err := readControl(r.tc); err != nil || h.typ != frameHello {
				t.Fatalf("no binding from the listener: %v", err)
			}
			r.send(t, appendFrame(nil, frameAccept, nil))
			bad, err := ln.Accept(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			if id, _ := bad.Peer(); id != c.ID() {
				t.Fatalf("accepted a tunnel from %s, want %s", id, c.ID())
			}
			r.send(t, tc.frame)
			select {
			case <-bad.Done():
			case <-ctxT(t).Done():
				t.Fatal("the tunnel did not end")
			}
			if !errors.Is(bad.Err(), tc.err) || !strings.Contains(bad.Err().Error(), tc.msg) {
				t.Fatalf("tunnel ended with %v, want %v naming %q", bad.Err(), tc.err, tc.msg)
			}
		})
	}

	t.Run("truncated binding", func(t *testing.T) {
		r := rawDial(t, c, addr)
		hello := r.hello(t, kindOpen, randomID(), 0)
		r.send(t, appendFrame(nil, frameHello, hello)[:headerLen+100])
		r.tc.CloseWrite()
		refusedFor("truncated binding", "truncated hello frame")
	})

	t.Run("replayed binding", func(t *testing.T) {
		// A binding valid in one session is worthless in another: the exporter differs.
		first := rawDial(t, c, addr)
		hello := appendFrame(nil, frameHello, first.hello(t, kindOpen, randomID(), 0))
		first.send(t, hello)
		if h, _, err := readControl(first.tc); err != nil || h.typ != frameHello {
			t.Fatalf("the genuine binding was not answered: %v", err)
		}
		first.tc.Close()
		second := rawDial(t, c, addr)
		second.send(t, hello)
		if reason := second.closeReason(t); !strings.Contains(reason, "binding signature") {
			t.Fatalf("replay refused with %q, want the binding signature named", reason)
		}
		refusedFor("replayed binding", "binding signature")
	})

	t.Run("binding key is not the certificate's", func(t *testing.T) {
		var alog logSink
		acfg := testConfig(b, peers, &alog)
		acfg.AllowUnregistered = true
		open := listen(t, acfg)
		r := rawDial(t, testKey(t, 7), open.Addr().String())
		bb := &binding{role: roleDialer, kind: kindOpen, tunnel: randomID(), time: time.Now().UnixNano(), key: testKey(t, 6).Public()}
		if err := bb.sign(testKey(t, 6), r.ekm, r.e.me.Load().certFP, r.listener); err != nil {
			t.Fatal(err)
		}
		r.send(t, appendFrame(nil, frameHello, bb.marshal()))
		if reason := r.closeReason(t); !strings.Contains(reason, "does not match the certificate key") {
			t.Fatalf("refused with %q", reason)
		}
	})

	t.Run("silent connection", func(t *testing.T) {
		var tlog logSink
		scfg := testConfig(b, peers, &tlog)
		scfg.HandshakeTimeout = 100 * time.Millisecond
		sl := listen(t, scfg)
		conn, err := net.Dial("tcp", sl.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("the listener did not drop a silent connection: %v", err)
		}
		waitFor(t, 5*time.Second, "the timeout in the log", func() bool {
			return tlog.has("tunnel connection refused", "timeout")
		})
	})

	t.Run("handshake flood", func(t *testing.T) {
		var flog logSink
		fcfg := testConfig(b, peers, &flog)
		fcfg.MaxPendingHandshakes = 2
		fl := listen(t, fcfg)
		var idle []net.Conn
		for range 3 {
			conn, err := net.Dial("tcp", fl.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, conn)
		}
		waitFor(t, 5*time.Second, "the flood refused", func() bool {
			return flog.has("too many handshakes in progress")
		})
		for _, conn := range idle {
			conn.Close()
		}
		// Once the idle ones are gone, handshakes go through again.
		waitFor(t, 10*time.Second, "a dial after the flood", func() bool {
			tun, err := Dial(ctxT(t), testConfig(a, peers, nil), fl.Addr().String(), Expect{})
			if err != nil {
				return false
			}
			tun.Close()
			return true
		})
	})

	close(stop)
	wg.Wait()
	if trafficErr != nil || trips == 0 {
		t.Fatalf("traffic on the established tunnel: %d round trips, then %v", trips, trafficErr)
	}
	if d.Err() != nil || l.Err() != nil {
		t.Fatalf("the established tunnel ended: %v / %v", d.Err(), l.Err())
	}
	if tun, err := Dial(ctxT(t), testConfig(a, peers, nil), addr, Expect{}); err != nil {
		t.Fatalf("dial after the bad input: %v", err)
	} else {
		tun.Close()
	}
}
