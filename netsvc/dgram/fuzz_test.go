package dgram

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrame feeds the frame decoder arbitrary streams: it must never panic, never
// return more than the buffer or MaxPayload, and what it decodes must encode back to
// the frame it came from.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{}, 16)
	f.Add([]byte{0}, 16)
	f.Add([]byte{0, 0}, 16)
	f.Add([]byte{0, 3, 'a', 'b', 'c', 0, 1, 'd'}, 16)
	f.Add([]byte{0, 3, 'a', 'b', 'c'}, 1)
	f.Add([]byte{0xff, 0xff, 1, 2, 3}, 16)
	f.Add([]byte{0xff, 0xe3}, 65507)
	f.Fuzz(func(t *testing.T, in []byte, size int) {
		if size < 0 || size > MaxPayload {
			size = MaxPayload
		}
		r := bytes.NewReader(in)
		buf := make([]byte, size)
		for {
			start := len(in) - r.Len()
			n, err := ReadFrame(r, buf)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("ReadFrame: unexpected error %v", err)
				}
				return
			}
			if n > size {
				t.Fatalf("ReadFrame returned %d bytes into a buffer of %d", n, size)
			}
			end := len(in) - r.Len()
			if n == end-start-headerLen { // the whole datagram fit
				f, err := AppendFrame(nil, buf[:n])
				if err != nil || !bytes.Equal(f, in[start:end]) {
					t.Fatalf("frame %x decoded to %x, which encodes to %x (%v)", in[start:end], buf[:n], f, err)
				}
			}
		}
	})
}
