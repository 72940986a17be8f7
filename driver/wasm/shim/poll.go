package shim

import (
	"context"
	"encoding/binary"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// poller implements WASI's poll_oneoff in place of wazero's own (v1.12.0), which cannot
// serve a network server:
//
//   - it reports every non-blocking descriptor (and a Go module's sockets are all
//     non-blocking) as ready at once, without looking, so a module waiting for a
//     connection spins on accept; and
//   - a call without a clock subscription (Go's scheduler blocking "until a descriptor
//     is ready") sleeps for the largest duration there is, so the module never wakes
//     (fixed upstream after v1.12.0, "poll_oneoff: do not sleep when there is no clock
//     subscription").
//
// This one blocks until something can have happened: a clock subscription's timeout
// passes, one of the module's sockets becomes ready (see socketWaiter), or the depot is
// stopped. wazero does not say which host socket a guest descriptor stands for, so when
// a socket becomes ready every descriptor the module waits on is reported ready; the
// module then tries each (they are non-blocking) and waits again for those that had
// nothing, which WASI allows ("spurious" readiness) and Go's runtime handles.
type poller struct {
	sockets socketWaiter
}

// socketWaiter waits for readiness of the TCP sockets of this process: the listeners
// preopened for the module and the connections it accepted. One supervisor runs one
// module, so they are exactly the module's sockets (the supervisor's own control
// sockets are Unix-domain sockets and are left out).
type socketWaiter interface {
	// wait blocks until a socket may have become ready (then it returns true), timeout
	// passes (timeout < 0: no timeout) or ctx ends. Timeout 0 only looks.
	wait(ctx context.Context, timeout time.Duration) bool
	close()
}

// WASI preview 1 values used by poll_oneoff.
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	subscriptionSize = 48
	eventSize        = 32

	clockAbstime = 1 // subclockflags: the timeout is an absolute time

	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
	errnoPerm    = 63
)

// maxFdWait bounds a wait on descriptors: a guest descriptor that is not a socket (a
// regular file is always ready, but is not one of the sockets watched) still gets an
// answer within this time. Go modules never wait on files (their reads do not block),
// so for them this only bounds an idle server's sleep.
const maxFdWait = time.Second

// pollOneoff is the host function: (in, out, nsubscriptions, result.nevents) -> errno.
func (p *poller) pollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(p.poll(ctx, mod.Memory(), uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])))
}

// subscription is what poll needs of one subscription.
type subscription struct {
	typ     byte
	timeout time.Duration // clock: relative timeout
	fd      uint32
}

// poll parses the subscriptions, waits and writes the events that occurred.
func (p *poller) poll(ctx context.Context, mem api.Memory, in, out, n, resultNevents uint32) uint32 {
	if n == 0 {
		return errnoInval
	}
	if uint64(n)*subscriptionSize > math.MaxUint32 {
		return errnoFault
	}
	inBuf, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return errnoFault
	}
	outBuf, ok := mem.Read(out, n*eventSize)
	if !ok {
		return errnoFault
	}
	subs, timeout, ready, waiting, errno := parseSubscriptions(inBuf, n)
	if errno != errnoSuccess {
		return errno
	}

	start := time.Now()
	sockets := false
	switch {
	case ready || timeout == 0:
		// Something is ready now, or the module only looks: do not block.
		if waiting {
			sockets = p.sockets.wait(ctx, 0)
		}
	case waiting:
		d := timeout
		capped := d < 0 || d > maxFdWait
		if capped {
			d = maxFdWait
		}
		sockets = p.sockets.wait(ctx, d)
		if !sockets && capped && ctx.Err() == nil {
			sockets = true // waited maxFdWait: let the module look again
		}
	default:
		sleep(ctx, timeout)
	}
	elapsed := time.Since(start)

	clear(outBuf)
	events := uint32(0)
	for i, s := range subs {
		var occurred bool
		switch {
		case s.typ == eventClock:
			occurred = elapsed >= s.timeout
		case s.fd <= 2:
			// Standard input reads end of file at once; standard output and error
			// (the depot's log files) never block a write.
			occurred = true
		default:
			occurred = sockets
		}
		if !occurred {
			continue
		}
		ev := outBuf[events*eventSize:]
		copy(ev[0:8], inBuf[i*subscriptionSize:i*subscriptionSize+8]) // userdata
		binary.LittleEndian.PutUint16(ev[8:], errnoSuccess)
		ev[10] = s.typ
		events++
	}
	if !mem.WriteUint32Le(resultNevents, events) {
		return errnoFault
	}
	return errnoSuccess
}

// parseSubscriptions reads n subscriptions. timeout is the smallest clock timeout (-1:
// none); ready reports a subscription that is ready at once (standard I/O); waiting, one
// on another descriptor. errno is non-zero for a malformed subscription, as wazero
// answers it.
func parseSubscriptions(buf []byte, n uint32) (subs []subscription, timeout time.Duration, ready, waiting bool, errno uint32) {
	timeout = -1
	subs = make([]subscription, n)
	for i := range subs {
		b := buf[i*subscriptionSize : (i+1)*subscriptionSize]
		s := subscription{typ: b[8]}
		switch s.typ {
		case eventClock:
			switch binary.LittleEndian.Uint16(b[40:]) {
			case 0:
			case clockAbstime:
				return nil, 0, false, false, errnoNotsup // as wazero: absolute timeouts are not supported
			default:
				return nil, 0, false, false, errnoInval
			}
			t := binary.LittleEndian.Uint64(b[24:])
			s.timeout = time.Duration(min(t, math.MaxInt64))
			if timeout < 0 || s.timeout < timeout {
				timeout = s.timeout
			}
		case eventFdRead, eventFdWrite:
			fd := int32(binary.LittleEndian.Uint32(b[16:]))
			if fd < 0 {
				return nil, 0, false, false, errnoBadf
			}
			s.fd = uint32(fd)
			if s.fd <= 2 {
				ready = true
			} else {
				waiting = true
			}
		default:
			return nil, 0, false, false, errnoInval
		}
		subs[i] = s
	}
	return subs, timeout, ready, waiting, errnoSuccess
}

// sleep waits for d (d < 0: until ctx ends) or until ctx ends, so a stopped depot does
// not sit out its module's sleep.
func sleep(ctx context.Context, d time.Duration) {
	if d == 0 {
		return
	}
	if d < 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// intervalWaiter is the portable socketWaiter: it cannot see the sockets, so it wakes
// the module to look at them at an interval that starts short after activity and grows
// while the module finds nothing (an idle server), up to maxInterval. It is used where
// socketWaiter has no event-based implementation (systems other than Linux).
type intervalWaiter struct {
	interval   time.Duration
	lastReturn time.Time
	lastReport time.Time
}

// The bounds of intervalWaiter's interval, and the gap between two waits that counts as
// work done by the module (which resets the interval).
const (
	minInterval = 200 * time.Microsecond
	maxInterval = 10 * time.Millisecond
	busyGap     = time.Millisecond
)

func (w *intervalWaiter) wait(ctx context.Context, timeout time.Duration) bool {
	now := time.Now()
	if now.Sub(w.lastReturn) > busyGap || w.interval == 0 {
		w.interval = minInterval
	}
	if timeout == 0 {
		// Only looking: say "look" as often as a blocking wait would have.
		if now.Sub(w.lastReport) >= w.interval {
			w.lastReport = now
			return true
		}
		return false
	}
	d := w.interval
	w.interval = min(2*w.interval, maxInterval)
	woke := true
	if timeout > 0 && timeout < d {
		d, woke = timeout, false
	}
	sleep(ctx, d)
	w.lastReturn = time.Now()
	if woke {
		w.lastReport = w.lastReturn
	}
	return woke && ctx.Err() == nil
}

func (w *intervalWaiter) close() {}
