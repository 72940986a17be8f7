package tunnel

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  byte
		n    int
		want string // "" = valid
	}{
		{frameHello, 1, ""},
		{frameHello, maxHello, ""},
		{frameHello, 0, "hello frame of 0 bytes, want 1 to 16384"},
		{frameHello, maxHello + 1, "hello frame of 16385 bytes"},
		{frameAccept, 0, ""},
		{frameAccept, 1, "accept frame of 1 bytes, want 0"},
		{frameData, 1, ""},
		{frameData, maxData, ""},
		{frameData, 0, "data frame of 0 bytes"},
		{frameData, maxData + 1, "data frame of 262145 bytes"},
		{frameData, maxFrameLen, "data frame of 16777215 bytes"},
		{frameEpochEnd, 8, ""},
		{frameEpochEnd, 7, "epoch-end frame of 7 bytes, want 8"},
		{frameRekey, 8, ""},
		{frameRekey, 0, "rekey frame of 0 bytes, want 8"},
		{frameClose, 0, ""},
		{frameClose, maxReason, ""},
		{frameClose, maxReason + 1, "close frame of 1025 bytes"},
		{0, 0, "unknown frame type 0"},
		{7, 0, "unknown frame type 7"},
		{255, 3, "unknown frame type 255"},
	} {
		var h [headerLen]byte
		copy(h[:], appendHeader(nil, tc.typ, tc.n))
		got, err := parseHeader(h)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("type %d, %d bytes: %v", tc.typ, tc.n, err)
		case tc.want == "" && (got.typ != tc.typ || got.n != tc.n):
			t.Errorf("type %d, %d bytes: parsed as %+v", tc.typ, tc.n, got)
		case tc.want != "" && (!errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("type %d, %d bytes: %v, want an ErrProtocol with %q", tc.typ, tc.n, err, tc.want)
		}
	}
}

func TestReadControlTruncated(t *testing.T) {
	t.Parallel()
	full := appendFrame(nil, frameClose, []byte("bye"))
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{nil, "EOF"},
		{full[:2], "truncated frame header"},
		{full[:5], "truncated close frame: 3 bytes announced"},
		{appendFrame(nil, frameData, []byte("x")), "data frame before the tunnel is established"},
	} {
		_, _, err := readControl(bytes.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%x: %v, want %q", tc.in, err, tc.want)
		}
	}
	h, p, err := readControl(bytes.NewReader(full))
	if err != nil || h.typ != frameClose || string(p) != "bye" {
		t.Fatalf("whole frame: %+v %q %v", h, p, err)
	}
}

func TestCloseReason(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxReason) // 2 bytes a rune
	p := closePayload(long)
	if len(p) > maxReason || !utf8.Valid(p) {
		t.Fatalf("payload of %d bytes, valid UTF-8 %v", len(p), utf8.Valid(p))
	}
	if r, err := decodeClose([]byte("bad\x00\x1b[31m\xffend")); err != nil || r != "bad??[31m\uFFFDend" {
		t.Fatalf("decodeClose: %q, %v", r, err)
	}
	if r, _ := decodeClose(nil); r != "no reason given" {
		t.Fatalf("empty reason: %q", r)
	}
	if _, err := decodeClose(make([]byte, maxReason+1)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("long reason: %v", err)
	}
}

func TestEpochEndAndRekeyPayloads(t *testing.T) {
	t.Parallel()
	if off, err := decodeEpochEnd(epochEndPayload(1 << 40)); err != nil || off != 1<<40 {
		t.Fatalf("epoch-end: %d %v", off, err)
	}
	if _, err := decodeEpochEnd([]byte{1}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("short epoch-end: %v", err)
	}
	if _, err := decodeRekey(nil); !errors.Is(err, ErrProtocol) {
		t.Fatalf("short rekey: %v", err)
	}
}

// testBinding returns a signed dialer binding and what it was signed over.
func testBinding(t testing.TB) (b *binding, ekm []byte, dfp, lfp [32]byte) {
	k := testKey(t, 0)
	ekm = bytes.Repeat([]byte{7}, 32)
	dfp, lfp = certFingerprint(k.Public().Ed25519), certFingerprint(testKey(t, 1).Public().Ed25519)
	b = &binding{role: roleDialer, kind: kindRekey, tunnel: [16]byte{1, 2, 3}, epoch: 9, time: time.Now().UnixNano(), key: k.Public()}
	if err := b.sign(k, ekm, dfp, lfp); err != nil {
		t.Fatal(err)
	}
	return b, ekm, dfp, lfp
}

func TestBindingRoundTripAndTamper(t *testing.T) {
	t.Parallel()
	b, ekm, dfp, lfp := testBinding(t)
	wire := b.marshal()
	got, err := unmarshalBinding(wire)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.marshal(), wire) {
		t.Fatal("re-encoding differs")
	}
	v, err := b.key.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := got.verify(v, ekm, dfp, lfp); err != nil {
		t.Fatalf("verify: %v", err)
	}
	other := testKey(t, 2).Public()
	ov, err := other.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	for name, tamper := range map[string]func(b *binding, ekm []byte, dfp, lfp *[32]byte){
		"kind":          func(b *binding, _ []byte, _, _ *[32]byte) { b.kind = kindOpen },
		"tunnel":        func(b *binding, _ []byte, _, _ *[32]byte) { b.tunnel[0]++ },
		"epoch":         func(b *binding, _ []byte, _, _ *[32]byte) { b.epoch++ },
		"time":          func(b *binding, _ []byte, _, _ *[32]byte) { b.time++ },
		"role":          func(b *binding, _ []byte, _, _ *[32]byte) { b.role = roleListener },
		"exporter":      func(_ *binding, ekm []byte, _, _ *[32]byte) { ekm[0]++ },
		"dialer cert":   func(_ *binding, _ []byte, dfp, _ *[32]byte) { dfp[0]++ },
		"listener cert": func(_ *binding, _ []byte, _, lfp *[32]byte) { lfp[0]++ },
		"carried key":   func(b *binding, _ []byte, _, _ *[32]byte) { b.key.HPKE = other.HPKE },
	} {
		c, _ := unmarshalBinding(wire)
		e2, d2, l2 := bytes.Clone(ekm), dfp, lfp
		tamper(c, e2, &d2, &l2)
		if err := c.verify(v, e2, d2, l2); err == nil {
			t.Errorf("%s changed, still verifies", name)
		}
	}
	if err := got.verify(ov, ekm, dfp, lfp); err == nil {
		t.Error("verifies under another key")
	}
}

func TestUnmarshalBindingErrors(t *testing.T) {
	t.Parallel()
	b, _, _, _ := testBinding(t)
	wire := b.marshal()
	mod := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(wire)) }
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "shorter than its fixed fields"},
		{"version", mod(func(p []byte) []byte { p[0] = 2; return p }), "version 2"},
		{"role", mod(func(p []byte) []byte { p[1] = 9; return p }), "role 9"},
		{"kind", mod(func(p []byte) []byte { p[2] = 9; return p }), "kind 9"},
		{"open with epoch", mod(func(p []byte) []byte { p[2] = kindOpen; return p }), "opening binding for epoch 9"},
		{"rekey to 0", mod(func(p []byte) []byte { clear(p[19:27]); return p }), "rekey binding for epoch 0"},
		{"zero tunnel", mod(func(p []byte) []byte { clear(p[3:19]); return p }), "zero tunnel ID"},
		{"listener with fields", mod(func(p []byte) []byte { p[1] = roleListener; return p }), "listener binding with kind"},
		{"ed25519 length", mod(func(p []byte) []byte { p[bindingFixedLen+1] = 31; return p }), "ed25519 key of 31 bytes"},
		{"truncated", wire[:len(wire)-10], "truncated ml-dsa-65 signature"},
		{"trailing", append(bytes.Clone(wire), 0), "1 bytes after the signature"},
		{"cut in a length", wire[:bindingFixedLen+1], "truncated before the ed25519 key"},
	} {
		_, err := unmarshalBinding(tc.in)
		if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		peer time.Duration
		ok   bool
	}{{0, true}, {5 * time.Minute, true}, {-5 * time.Minute, true}, {5*time.Minute + 1, false}, {-time.Hour, false}} {
		b := &binding{time: now.Add(tc.peer).UnixNano()}
		err := b.checkClock(now, 5*time.Minute)
		if (err == nil) != tc.ok {
			t.Errorf("peer %s off: %v", tc.peer, err)
		}
		if err != nil && (!errors.Is(err, ErrClockSkew) || !strings.HasPrefix(err.Error(), "clock far off: peer says ") || !strings.Contains(err.Error(), ", we have 2030-01-01T12:00:00Z")) {
			t.Errorf("message: %v", err)
		}
	}
}

// fakeConn carries the bytes of a test as an established epoch's connection.
type fakeConn struct {
	io.Reader
	bytes.Buffer // what the tunnel writes
}

func (f *fakeConn) Read(p []byte) (int, error)     { return f.Reader.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)    { return f.Buffer.Write(p) }
func (*fakeConn) Close() error                     { return nil }
func (*fakeConn) LocalAddr() net.Addr              { return memAddr{} }
func (*fakeConn) RemoteAddr() net.Addr             { return memAddr{} }
func (*fakeConn) SetDeadline(time.Time) error      { return nil }
func (*fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (*fakeConn) SetWriteDeadline(time.Time) error { return nil }
