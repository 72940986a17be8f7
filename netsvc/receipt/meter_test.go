package receipt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

func TestMeterTalliesBothWays(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	m := NewMeter(a)
	if got, want := m.Sent(), tallyOf(nil); got != want {
		t.Fatalf("fresh meter: sent %+v, want %+v", got, want)
	}
	out, in := randomBytes(t, 100_003), randomBytes(t, 77_777)

	var wg sync.WaitGroup
	var peerGot []byte
	var peerErr error
	wg.Go(func() { // the peer reads what the meter's side writes
		peerGot = make([]byte, len(out))
		_, peerErr = io.ReadFull(b, peerGot)
	})
	wg.Go(func() { // and writes in uneven pieces
		for p := in; len(p) > 0; {
			n := min(len(p), 1+len(p)%4099)
			if _, err := b.Write(p[:n]); err != nil {
				t.Errorf("peer write: %v", err)
				return
			}
			p = p[n:]
		}
	})
	var writeErr error
	wg.Go(func() {
		for p := out; len(p) > 0; {
			n := min(len(p), 1+len(p)%7001)
			if _, err := m.Write(p[:n]); err != nil {
				writeErr = err
				return
			}
			p = p[n:]
		}
	})
	got := make([]byte, len(in))
	if _, err := io.ReadFull(m, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	wg.Wait()
	if writeErr != nil || peerErr != nil {
		t.Fatalf("write: %v, peer read: %v", writeErr, peerErr)
	}
	if !bytes.Equal(got, in) || !bytes.Equal(peerGot, out) {
		t.Fatal("the meter changed the bytes it carried")
	}
	if s := m.Sent(); s != tallyOf(out) {
		t.Errorf("sent %d bytes %s, want %d %s", s.Bytes, s.Hash.Short(), len(out), tallyOf(out).Hash.Short())
	}
	if r := m.Received(); r != tallyOf(in) {
		t.Errorf("received %d bytes %s, want %d %s", r.Bytes, r.Hash.Short(), len(in), tallyOf(in).Hash.Short())
	}
}

// shortConn takes only the first half of each write and then fails.
type shortConn struct{ net.Conn }

func (shortConn) Write(p []byte) (int, error) { return len(p) / 2, errors.New("link down") }

func TestMeterCountsOnlyWhatWasWritten(t *testing.T) {
	m := NewMeter(shortConn{})
	p := []byte("0123456789")
	if n, err := m.Write(p); err == nil || n != 5 {
		t.Fatalf("write: %d, %v; want 5 and an error", n, err)
	}
	if got := m.Sent(); got != tallyOf(p[:5]) {
		t.Fatalf("sent %+v, want the 5 bytes the connection took", got)
	}
}
