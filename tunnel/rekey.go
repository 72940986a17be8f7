package tunnel

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// epochLoop owns the tunnel's epochs. On the dialer it rekeys when the epoch is old
// enough, has carried enough bytes, or the listener asks; on the listener it asks for
// a rekey on the same grounds and ends the tunnel if the dialer does not comply. When
// the tunnel ends it tears the tunnel down.
//
// Decisions look at the epoch's age, not at which timer fired: a timer set for an
// epoch that has just ended must not ask for another rekey.
func (t *Tunnel) epochLoop() {
	defer close(t.loopDone)
	defer t.teardown()
	interval := t.e.cfg.RekeyInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	var overdue *time.Timer // listener: armed while a request is unanswered
	var overdueC <-chan time.Time
	defer func() {
		if overdue != nil {
			overdue.Stop()
		}
	}()
	askedFor := uint64(math.MaxUint64) // listener: the epoch we asked to leave
	for {
		select {
		case <-t.done:
			return
		case <-t.sess.CloseChan():
			t.fail(t.muxLog.ended())
			return
		case <-timer.C:
		case <-t.rekeyWake:
		case <-t.newEpoch:
		case <-overdueC:
			if t.epoch.Load() == askedFor {
				t.fail(fmt.Errorf("peer did not rekey epoch %d within %s of our request", askedFor, t.graceTime()))
				return
			}
		}
		epoch := t.epoch.Load()
		age := time.Since(time.Unix(0, t.epochStart.Load()))
		due := age >= interval || t.overBytes()
		if t.role == roleDialer {
			// A request for an epoch already left (ours crossed it) is stale.
			if asked := t.peerAsked.Swap(0); asked > epoch {
				due = true
			}
			if due {
				if err := t.rekey(); err != nil {
					t.fail(err)
					return
				}
				age = 0
			}
		} else if due && askedFor != epoch {
			if err := t.askRekey(epoch); err != nil {
				t.fail(err)
				return
			}
			askedFor = epoch
			if overdue == nil {
				overdue = time.NewTimer(t.graceTime())
			} else {
				overdue.Reset(t.graceTime())
			}
			overdueC = overdue.C
		}
		if askedFor != epoch && overdueC != nil {
			overdue.Stop()
			overdueC = nil
		}
		if age >= interval {
			age = 0 // asked already; the overdue timer watches the answer
		}
		timer.Reset(interval - age)
	}
}

// graceTime is how long a rekey may take: the handshake, then the drain of the old
// connection, which on a slow path holds what the socket buffers held.
func (t *Tunnel) graceTime() time.Duration {
	return t.e.cfg.HandshakeTimeout + max(t.e.cfg.HandshakeTimeout, t.e.cfg.RekeyInterval)
}

// overBytes reports whether the current epoch carried RekeyBytes either way. The
// received count is the reader's, which lags the writer by an epoch for a moment after
// a rekey: it counts only once the reader is in the current epoch too.
func (t *Tunnel) overBytes() bool {
	limit := t.e.cfg.RekeyBytes
	if t.epochSent.Load() >= limit {
		return true
	}
	return t.repoch.Load() == t.epoch.Load() && t.epochRecv.Load() >= limit
}

// rekey runs one rekey from the dialer: a fresh handshake for the next epoch, the
// switch, then the wait until the old connection is retired, so that one rekey at a
// time is in flight.
func (t *Tunnel) rekey() error {
	epoch := t.epoch.Load() + 1
	start := time.Now()
	nc, _, err := t.dialer.connect(t.ctx, t.addr, kindRekey, t.id, epoch, dialPolicy{same: &t.peer})
	if err != nil {
		if terr := t.Err(); terr != nil {
			return terr
		}
		return fmt.Errorf("rekey to epoch %d: %w", epoch, err)
	}
	old, err := t.install(nc)
	if err != nil {
		return fmt.Errorf("rekey to epoch %d: %w", epoch, err)
	}
	t.log.Debug("tunnel rekeyed", "epoch", epoch, "took", time.Since(start))
	timer := time.NewTimer(t.graceTime())
	defer timer.Stop()
	select {
	case <-old.retired:
		return nil
	case <-t.done:
		return t.Err()
	case <-timer.C:
		return fmt.Errorf("rekey to epoch %d: the peer did not end epoch %d within %s", epoch, old.epoch, t.graceTime())
	}
}

// askRekey sends the listener's request to leave epoch, unless a rekey has just
// left it.
func (t *Tunnel) askRekey(epoch uint64) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	c := t.wconn
	if c.epoch != epoch {
		return nil
	}
	_, err := c.tls.Write(appendFrame(nil, frameRekey, binary.BigEndian.AppendUint64(nil, c.epoch)))
	if err == nil {
		err = c.raw.Flush()
	}
	if err != nil {
		return t.connErr(c, "ask for rekey", err)
	}
	return nil
}

// teardown ends the stream multiplexer (whose loops the closed connections have
// unblocked) and leaves the listener's registry.
func (t *Tunnel) teardown() {
	t.sess.Close()
	if t.listener != nil {
		t.listener.forget(t)
	}
}
