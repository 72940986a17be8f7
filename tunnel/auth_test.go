package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/identity"
)

// TestClassicalOnlyPeersRefused: a client or server limited to X25519 never gets a
// tunnel, and the listener goes on serving.
func TestClassicalOnlyPeersRefused(t *testing.T) {
	t.Parallel()
	var log logSink
	dcfg, lcfg := twoNodes(t, &log)
	ln := listen(t, lcfg)

	// A Go TLS client with a registered node's certificate, but classical groups only.
	e, err := newEndpoint(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	classical := &tls.Config{
		MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519},
		Certificates: []tls.Certificate{e.me.Load().cert}, InsecureSkipVerify: true, NextProtos: []string{alpn},
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), classical)
	if err == nil {
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("a classical-only client completed a handshake")
	}
	waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
		return log.has("tunnel connection refused", "TLS handshake")
	})

	// A classical-only server: the dialer refuses it.
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cln.Close()
	go func() {
		for {
			c, err := cln.Accept()
			if err != nil {
				return
			}
			srv := tls.Server(c, &tls.Config{MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519},
				Certificates: []tls.Certificate{e.me.Load().cert}, NextProtos: []string{alpn}})
			srv.Handshake()
			srv.Close()
		}
	}()
	if _, err := Dial(ctxT(t), dcfg, cln.Addr().String(), Expect{}); err == nil {
		t.Fatal("dialed a classical-only server")
	}

	// The listener still serves.
	d, err := Dial(ctxT(t), dcfg, ln.Addr().String(), Expect{})
	if err != nil {
		t.Fatalf("dial after the refusal: %v", err)
	}
	d.Close()
}

func TestUnknownKeysRefused(t *testing.T) {
	t.Parallel()
	a, b, stranger := testKey(t, 0), testKey(t, 1), testKey(t, 4)
	var log logSink
	ln := listen(t, testConfig(b, peersOf(a, b), &log))

	// The listener does not know the dialer.
	_, err := Dial(ctxT(t), testConfig(stranger, peersOf(b), nil), ln.Addr().String(), Expect{})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown dialer: %v, want ErrRefused", err)
	}
	waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
		return log.has("tunnel connection refused", "not registered")
	})

	// The dialer does not know the listener.
	_, err = Dial(ctxT(t), testConfig(a, peersOf(a), nil), ln.Addr().String(), Expect{})
	if !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("unknown listener: %v, want ErrUnknownPeer", err)
	}
}

// TestWrongMLDSAKeyRefused: a peer whose Ed25519 key is registered but whose ML-DSA key
// is not the ledger's fails the binding, whichever side it is.
func TestWrongMLDSAKeyRefused(t *testing.T) {
	t.Parallel()
	a, b, other := testKey(t, 0), testKey(t, 1), testKey(t, 5)
	forged := func(k *identity.Key) identity.PublicKey {
		p := k.Public()
		p.MLDSA65 = other.Public().MLDSA65
		return p
	}

	t.Run("dialer", func(t *testing.T) {
		t.Parallel()
		var log logSink
		lpeers := peersOf(b)
		lpeers.Add(a.ID(), forged(a)) // the ledger holds another ML-DSA key for a
		ln := listen(t, testConfig(b, lpeers, &log))
		_, err := Dial(ctxT(t), testConfig(a, peersOf(a, b), nil), ln.Addr().String(), Expect{})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "ml-dsa-65 half does not verify") {
			t.Fatalf("dial: %v, want a refusal naming the ML-DSA half", err)
		}
		waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
			return log.has("tunnel connection refused", "ml-dsa-65 half does not verify")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if tun, err := ln.Accept(ctx); err == nil {
			t.Fatalf("the listener accepted a tunnel from %s", tun.peer.nodeID)
		}
	})
	t.Run("listener", func(t *testing.T) {
		t.Parallel()
		var log logSink
		ln := listen(t, testConfig(b, peersOf(a, b), &log))
		dpeers := peersOf(a)
		dpeers.Add(b.ID(), forged(b))
		_, err := Dial(ctxT(t), testConfig(a, dpeers, nil), ln.Addr().String(), Expect{})
		if !errors.Is(err, identity.ErrBadSignature) || !strings.Contains(err.Error(), "ml-dsa-65 half does not verify") {
			t.Fatalf("dial: %v, want a bad ML-DSA signature", err)
		}
		waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
			return log.has("tunnel connection refused", "refused our binding", "ml-dsa-65")
		})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if tun, err := ln.Accept(ctx); err == nil {
			t.Fatalf("the listener accepted a tunnel from %s", tun.peer.nodeID)
		}
	})
}

func TestClockFarOffRefused(t *testing.T) {
	t.Parallel()
	ahead := func() time.Time { return time.Now().Add(10 * time.Minute) }

	t.Run("dialer ahead", func(t *testing.T) {
		t.Parallel()
		var log logSink
		dcfg, lcfg := twoNodes(t, &log)
		dcfg.Now = ahead
		ln := listen(t, lcfg)
		_, err := Dial(ctxT(t), dcfg, ln.Addr().String(), Expect{})
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "clock far off: peer says ") || !strings.Contains(err.Error(), ", we have ") {
			t.Fatalf("dial: %v, want a refusal for the clock", err)
		}
		waitFor(t, 5*time.Second, "the refusal in the log", func() bool {
			return log.has("tunnel connection refused", "clock far off: peer says")
		})
	})
	t.Run("listener ahead", func(t *testing.T) {
		t.Parallel()
		dcfg, lcfg := twoNodes(t, nil)
		lcfg.Now = ahead
		lcfg.MaxClockSkew = time.Hour // the listener tolerates it; the dialer does not
		ln := listen(t, lcfg)
		_, err := Dial(ctxT(t), dcfg, ln.Addr().String(), Expect{})
		if !errors.Is(err, ErrClockSkew) || !strings.Contains(err.Error(), "clock far off: peer says ") {
			t.Fatalf("dial: %v, want ErrClockSkew", err)
		}
	})
	t.Run("within the limit", func(t *testing.T) {
		t.Parallel()
		dcfg, lcfg := twoNodes(t, nil)
		dcfg.Now = func() time.Time { return time.Now().Add(4 * time.Minute) }
		pair(t, dcfg, lcfg)
	})
}

// TestAdmission: a newcomer, unknown to the ledger and knowing no one, reaches the node
// its join token names, and nothing else.
func TestAdmission(t *testing.T) {
	t.Parallel()
	a, b, newcomer := testKey(t, 0), testKey(t, 1), testKey(t, 6)
	var log logSink
	lcfg := testConfig(b, peersOf(a, b), &log)
	lcfg.AllowUnregistered = true
	ln := listen(t, lcfg)
	ncfg := testConfig(newcomer, nil, nil) // no ledger yet
	ncfg.RekeyInterval = 20 * time.Millisecond
	pin := Expect{Fingerprint: b.Public().Fingerprint()}

	d, err := Dial(ctxT(t), ncfg, ln.Addr().String(), pin)
	if err != nil {
		t.Fatalf("newcomer dial: %v", err)
	}
	defer d.Close()
	l, err := ln.Accept(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Registered() || d.Registered() {
		t.Fatalf("Registered: listener side %v, newcomer side %v; want false on both", l.Registered(), d.Registered())
	}
	if id, key := l.Peer(); id != newcomer.ID() || !key.Equal(newcomer.Public()) || len(key.HPKE) == 0 {
		t.Fatalf("listener sees %s, want the newcomer's full key", id)
	}
	if id, key := d.Peer(); id != b.ID() || !key.Equal(b.Public()) {
		t.Fatalf("newcomer sees %s, want %s", id, b.ID())
	}
	echo(t, l)
	waitFor(t, 10*time.Second, "rekeys of the admission tunnel", func() bool {
		if err := roundTrip(t, d, "join me"); err != nil {
			t.Fatal(err)
		}
		return d.Epoch() >= 2
	})

	// A registered node through the same listener is registered.
	r, err := Dial(ctxT(t), testConfig(a, peersOf(a, b), nil), ln.Addr().String(), Expect{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rl, err := ln.Accept(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	if !rl.Registered() {
		t.Fatal("a registered node is reported unregistered")
	}

	for _, tc := range []struct {
		name string
		want Expect
		addr string
		err  string
	}{
		{"wrong pin", Expect{Fingerprint: a.Public().Fingerprint()}, ln.Addr().String(), "fingerprint"},
		{"no pin", Expect{}, ln.Addr().String(), "not registered"},
		{"node ID without registration", Expect{NodeID: b.ID()}, ln.Addr().String(), "not registered"},
	} {
		if _, err := Dial(ctxT(t), ncfg, tc.addr, tc.want); !errors.Is(err, ErrUnknownPeer) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want ErrUnknownPeer naming %q", tc.name, err, tc.err)
		}
	}

	// A listener that does not admit newcomers refuses it.
	strict := listen(t, testConfig(b, peersOf(a, b), nil))
	if _, err := Dial(ctxT(t), ncfg, strict.Addr().String(), pin); !errors.Is(err, ErrRefused) {
		t.Fatalf("strict listener: %v, want ErrRefused", err)
	}
}

func TestExpect(t *testing.T) {
	t.Parallel()
	dcfg, lcfg := twoNodes(t, nil)
	ln := listen(t, lcfg)
	b := lcfg.Key
	for _, tc := range []struct {
		name string
		want Expect
		ok   bool
	}{
		{"node ID", Expect{NodeID: b.ID()}, true},
		{"fingerprint", Expect{Fingerprint: b.Public().Fingerprint()}, true},
		{"both", Expect{NodeID: b.ID(), Fingerprint: b.Public().Fingerprint()}, true},
		{"other node", Expect{NodeID: dcfg.Key.ID()}, false},
		{"other fingerprint", Expect{Fingerprint: dcfg.Key.Public().Fingerprint()}, false},
	} {
		d, err := Dial(ctxT(t), dcfg, ln.Addr().String(), tc.want)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && !errors.Is(err, ErrUnknownPeer):
			t.Errorf("%s: %v, want ErrUnknownPeer", tc.name, err)
		}
		if d != nil {
			d.Close()
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := DefaultConfig()
	good.Key = testKey(t, 0)
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"Key", func(c *Config) { c.Key = nil }},
		{"RekeyInterval", func(c *Config) { c.RekeyInterval = 0 }},
		{"RekeyBytes", func(c *Config) { c.RekeyBytes = -1 }},
		{"HandshakeTimeout", func(c *Config) { c.HandshakeTimeout = 0 }},
		{"MaxClockSkew", func(c *Config) { c.MaxClockSkew = -time.Second }},
		{"StreamWindow", func(c *Config) { c.StreamWindow = 1024 }},
		{"MaxPendingHandshakes", func(c *Config) { c.MaxPendingHandshakes = 0 }},
		{"AcceptBacklog", func(c *Config) { c.AcceptBacklog = 0 }},
	} {
		c := good
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want an error naming the field", tc.field, err)
		}
		if _, err := Listen(c, nil); err == nil {
			t.Errorf("%s: Listen accepted the bad config", tc.field)
		}
	}
}
