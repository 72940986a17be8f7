package tunnel

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// Fuzz targets for every decoder of what a peer sends: frame headers and control
// frames (the handshake), binding messages, and the stream reader of an established
// tunnel. Run one with: go test -fuzz FuzzBinding ./tunnel

func seedFrames(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendFrame(nil, frameAccept, nil))
	f.Add(appendFrame(nil, frameClose, []byte("refused: clock far off")))
	f.Add(appendFrame(nil, frameData, []byte("stream bytes")))
	f.Add(appendFrame(nil, frameEpochEnd, epochEndPayload(12)))
	f.Add(appendFrame(nil, frameRekey, epochEndPayload(0)))
	f.Add([]byte{frameHello, 0xff, 0xff, 0xff})
	f.Add([]byte{0x7f, 0, 0, 0})
	f.Add(frames(appendFrame(nil, frameData, []byte("abc")), appendFrame(nil, frameEpochEnd, epochEndPayload(3)), appendFrame(nil, frameData, []byte("d"))))
}

func FuzzControlFrames(f *testing.F) {
	seedFrames(f)
	b, _, _, _ := testBinding(f)
	f.Add(appendFrame(nil, frameHello, b.marshal()))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		for {
			h, p, err := readControl(r)
			if err != nil {
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.EOF) {
					t.Fatalf("error outside the protocol's: %v", err)
				}
				return
			}
			if len(p) != h.n {
				t.Fatalf("payload of %d bytes for a header of %d", len(p), h.n)
			}
			var hb [headerLen]byte
			copy(hb[:], appendHeader(nil, h.typ, h.n))
			if again, err := parseHeader(hb); err != nil || again != h {
				t.Fatalf("header %+v does not re-encode: %v", h, err)
			}
			switch h.typ {
			case frameHello:
				unmarshalBinding(p)
			case frameClose:
				if _, err := decodeClose(p); err != nil {
					t.Fatalf("a close frame within the limit: %v", err)
				}
			case frameEpochEnd:
				if _, err := decodeEpochEnd(p); err != nil {
					t.Fatal(err)
				}
			case frameRekey:
				if _, err := decodeRekey(p); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

func FuzzBinding(f *testing.F) {
	b, ekm, dfp, lfp := testBinding(f)
	wire := b.marshal()
	f.Add(wire)
	f.Add(wire[:bindingFixedLen])
	f.Add(append(bytes.Clone(wire), 0))
	l := &binding{role: roleListener, time: b.time, key: b.key, sig: b.sig}
	f.Add(l.marshal())
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := unmarshalBinding(in)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error outside the protocol's: %v", err)
			}
			return
		}
		if !bytes.Equal(got.marshal(), in) {
			t.Fatal("a decoded binding re-encodes differently: the encoding is not canonical")
		}
		// The signature is checked elsewhere (TestBindingRoundTripAndTamper): under
		// the fuzzer's instrumentation ML-DSA would take most of the time.
		got.transcript(ekm, dfp, lfp)
	})
}

func FuzzStreamReader(f *testing.F) {
	seedFrames(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, role := range []byte{roleDialer, roleListener} {
			tun := readerTunnel(t, role, in)
			out, err := readAll(tun)
			if err == nil || !(errors.Is(err, ErrProtocol) || errors.Is(err, ErrConnLost) || errors.Is(err, ErrPeerClosed)) {
				t.Fatalf("reader ended with %v", err)
			}
			if tun.Stats().BytesReceived != uint64(len(out)) {
				t.Fatalf("counted %d bytes, read %d", tun.Stats().BytesReceived, len(out))
			}
		}
	})
}
