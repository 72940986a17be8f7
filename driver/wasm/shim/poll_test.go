package shim

import (
	"context"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// memory is a guest memory for poll: only Read and WriteUint32Le are used.
type memory struct {
	api.Memory // nil: any other method panics, which would be a test failure
	buf        []byte
}

func (m *memory) Read(off, n uint32) ([]byte, bool) {
	if uint64(off)+uint64(n) > uint64(len(m.buf)) {
		return nil, false
	}
	return m.buf[off : off+n], true
}

func (m *memory) WriteUint32Le(off, v uint32) bool {
	if uint64(off)+4 > uint64(len(m.buf)) {
		return false
	}
	binary.LittleEndian.PutUint32(m.buf[off:], v)
	return true
}

// sockets is a socketWaiter that reports readiness as told.
type sockets struct {
	ready bool
	calls []time.Duration
}

func (s *sockets) wait(ctx context.Context, timeout time.Duration) bool {
	s.calls = append(s.calls, timeout)
	return s.ready
}
func (s *sockets) close() {}

// Offsets in the test memory: subscriptions at 0, events at 1024, nevents at 2048.
const (
	inOff  = 0
	outOff = 1024
	nOff   = 2048
)

func clockSub(userdata uint64, timeout time.Duration, flags uint16) []byte {
	b := make([]byte, subscriptionSize)
	binary.LittleEndian.PutUint64(b, userdata)
	b[8] = eventClock
	binary.LittleEndian.PutUint32(b[16:], 1) // monotonic
	binary.LittleEndian.PutUint64(b[24:], uint64(timeout))
	binary.LittleEndian.PutUint16(b[40:], flags)
	return b
}

func fdSub(userdata uint64, typ byte, fd int32) []byte {
	b := make([]byte, subscriptionSize)
	binary.LittleEndian.PutUint64(b, userdata)
	b[8] = typ
	binary.LittleEndian.PutUint32(b[16:], uint32(fd))
	return b
}

// run polls the subscriptions and returns the errno and the userdata of the events.
func run(t *testing.T, ctx context.Context, p *poller, subs ...[]byte) (uint32, []uint64) {
	t.Helper()
	m := &memory{buf: make([]byte, 4096)}
	for i, s := range subs {
		copy(m.buf[inOff+i*subscriptionSize:], s)
	}
	errno := p.poll(ctx, m, inOff, outOff, uint32(len(subs)), nOff)
	n := binary.LittleEndian.Uint32(m.buf[nOff:])
	var got []uint64
	for i := range n {
		ev := m.buf[outOff+i*eventSize:]
		if ev[10] > eventFdWrite || binary.LittleEndian.Uint16(ev[8:]) != 0 {
			t.Errorf("event %d: type %d errno %d", i, ev[10], binary.LittleEndian.Uint16(ev[8:]))
		}
		got = append(got, binary.LittleEndian.Uint64(ev))
	}
	return errno, got
}

func TestPollClock(t *testing.T) {
	t.Parallel()
	p := &poller{sockets: &sockets{}}
	t0 := time.Now()
	errno, got := run(t, context.Background(), p, clockSub(7, 5*time.Millisecond, 0))
	if errno != 0 || len(got) != 1 || got[0] != 7 || time.Since(t0) < 5*time.Millisecond {
		t.Errorf("clock: errno %d, events %v after %v", errno, got, time.Since(t0))
	}
	// Two clocks: only the one that expired is an event.
	errno, got = run(t, context.Background(), p, clockSub(1, time.Hour, 0), clockSub(2, time.Millisecond, 0))
	if errno != 0 || len(got) != 1 || got[0] != 2 {
		t.Errorf("two clocks: errno %d, events %v", errno, got)
	}
}

func TestPollStdioIsReady(t *testing.T) {
	t.Parallel()
	p := &poller{sockets: &sockets{}}
	t0 := time.Now()
	errno, got := run(t, context.Background(), p, clockSub(1, time.Hour, 0), fdSub(2, eventFdRead, 0), fdSub(3, eventFdWrite, 1))
	if errno != 0 || len(got) != 2 || got[0] != 2 || got[1] != 3 || time.Since(t0) > time.Second {
		t.Errorf("stdio: errno %d, events %v after %v", errno, got, time.Since(t0))
	}
}

func TestPollSockets(t *testing.T) {
	t.Parallel()
	s := &sockets{ready: true}
	p := &poller{sockets: s}
	// No clock: wait for sockets, bounded by maxFdWait.
	errno, got := run(t, context.Background(), p, fdSub(1, eventFdRead, 4), fdSub(2, eventFdWrite, 5))
	if errno != 0 || len(got) != 2 || s.calls[0] != maxFdWait {
		t.Errorf("sockets ready: errno %d, events %v, waits %v", errno, got, s.calls)
	}
	// A clock shorter than maxFdWait bounds the wait; sockets not ready: only the clock.
	s.ready, s.calls = false, nil
	errno, got = run(t, context.Background(), p, fdSub(1, eventFdRead, 4), clockSub(9, 0, 0))
	if errno != 0 || len(got) != 1 || got[0] != 9 || len(s.calls) != 1 || s.calls[0] != 0 {
		t.Errorf("only looking: errno %d, events %v, waits %v", errno, got, s.calls)
	}
	// After maxFdWait with nothing ready, the descriptors are reported anyway (they may
	// be files, which are always ready).
	s.calls = nil
	errno, got = run(t, context.Background(), p, fdSub(1, eventFdRead, 7))
	if errno != 0 || len(got) != 1 || got[0] != 1 {
		t.Errorf("after maxFdWait: errno %d, events %v", errno, got)
	}
}

func TestPollStopEndsSleep(t *testing.T) {
	t.Parallel()
	p := &poller{sockets: &sockets{}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	t0 := time.Now()
	errno, got := run(t, ctx, p, clockSub(1, time.Hour, 0))
	if errno != 0 || len(got) != 0 || time.Since(t0) > time.Second {
		t.Errorf("stopped: errno %d, events %v after %v", errno, got, time.Since(t0))
	}
}

func TestPollErrors(t *testing.T) {
	t.Parallel()
	p := &poller{sockets: &sockets{}}
	bad := clockSub(1, 0, 0)
	bad[8] = 9
	for _, tc := range []struct {
		name string
		subs [][]byte
		want uint32
	}{
		{"none", nil, errnoInval},
		{"abstime", [][]byte{clockSub(1, 0, clockAbstime)}, errnoNotsup},
		{"bad flags", [][]byte{clockSub(1, 0, 4)}, errnoInval},
		{"negative fd", [][]byte{fdSub(1, eventFdRead, -1)}, errnoBadf},
		{"bad type", [][]byte{bad}, errnoInval},
	} {
		if errno, _ := run(t, context.Background(), p, tc.subs...); errno != tc.want {
			t.Errorf("%s: errno %d, want %d", tc.name, errno, tc.want)
		}
	}
	m := &memory{buf: make([]byte, 64)}
	if errno := p.poll(context.Background(), m, 0, 0, 2, 0); errno != errnoFault {
		t.Errorf("subscriptions past the memory: errno %d, want EFAULT", errno)
	}
	if errno := p.poll(context.Background(), m, 0, 0, math.MaxUint32, 0); errno != errnoFault {
		t.Errorf("huge count: errno %d, want EFAULT", errno)
	}
}

// FuzzParseSubscriptions feeds poll_oneoff's input, which the module controls, to the
// parser: it must never panic, and what it accepts must be consistent.
func FuzzParseSubscriptions(f *testing.F) {
	f.Add(clockSub(1, time.Second, 0))
	f.Add(append(fdSub(1, eventFdRead, 4), clockSub(2, 0, 0)...))
	f.Add(fdSub(1, eventFdWrite, 1))
	f.Add(clockSub(1, math.MaxInt64, clockAbstime))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := uint32(len(data) / subscriptionSize)
		subs, timeout, ready, waiting, errno := parseSubscriptions(data, n)
		if errno != errnoSuccess {
			return
		}
		if len(subs) != int(n) {
			t.Fatalf("%d subscriptions from %d", len(subs), n)
		}
		for _, s := range subs {
			switch {
			case s.typ == eventClock && (s.timeout < 0 || timeout < 0 || timeout > s.timeout):
				t.Fatalf("clock %v, smallest timeout %v", s.timeout, timeout)
			case s.typ != eventClock && s.fd <= 2 && !ready, s.typ != eventClock && s.fd > 2 && !waiting:
				t.Fatalf("fd %d not counted", s.fd)
			}
		}
	})
}

func TestIntervalWaiter(t *testing.T) {
	t.Parallel()
	w := &intervalWaiter{}
	if !w.wait(context.Background(), -1) {
		t.Error("a wait without timeout must end with 'look'")
	}
	// Consecutive waits with no work in between back off, up to maxInterval.
	for range 10 {
		w.lastReturn = time.Now() // as if the module looked and found nothing at once
		w.wait(context.Background(), -1)
	}
	if w.interval != maxInterval {
		t.Errorf("interval %v after idle waits, want %v", w.interval, maxInterval)
	}
	if w.wait(context.Background(), time.Microsecond) {
		t.Error("a wait ended by its timeout must not say 'look'")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w.wait(ctx, time.Hour) {
		t.Error("a stopped wait must not say 'look'")
	}
}
