package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// UDP has no connections, so the proxy makes sessions: the datagrams from one client
// address (the source address and port the VIP socket sees) go to the one replica
// chosen at its first datagram, and the replica's answers go back from the VIP to
// that address. A session holds a connected socket to a local replica, or a tunnel
// stream of framed datagrams to a remote one, so that every answer comes back to the
// session it belongs to.

// sessionQueue bounds the datagrams waiting for a session's backend (being dialled,
// or slower than the client). UDP may drop: beyond it datagrams are dropped, never
// the reading of the port's socket held up.
const sessionQueue = 64

// udpCloseGrace bounds how long an ending session waits for a tunnel's far end to
// end its side, so that the flow's receipt counts every byte.
const udpCloseGrace = 2 * time.Second

// session is one client's UDP session on a udp port.
type session struct {
	from   netip.AddrPort
	client net.Addr // where answers go
	queue  chan []byte
	last   atomic.Int64 // when a datagram last went either way, in Unix nanoseconds
	stop   chan struct{}
	once   sync.Once
}

func (s *session) touch() { s.last.Store(time.Now().UnixNano()) }

// end asks the session to end; its goroutine closes what it holds.
func (s *session) end() { s.once.Do(func() { close(s.stop) }) }

// udpPort is the sessions of one udp service port.
type udpPort struct {
	p  *Proxy
	l  *listener
	pc *portCounters

	mu       sync.Mutex
	sessions map[netip.AddrPort]*session
}

// serveUDP reads the datagrams of a udp port's socket until it is closed, and hands
// each to its client's session, starting one for a new client.
func (p *Proxy) serveUDP(ctx context.Context, wg *sync.WaitGroup, l *listener, pc *portCounters) {
	u := &udpPort{p: p, l: l, pc: pc, sessions: map[netip.AddrPort]*session{}}
	buf := make([]byte, 64<<10)
	backoff := 5 * time.Millisecond
	for {
		n, addr, err := l.pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return // the sessions end with ctx, which closing the port cancels
			}
			if !p.pause(ctx, l, "read", err, &backoff) {
				return
			}
			continue
		}
		backoff = 5 * time.Millisecond
		from := addrPortOf(addr)
		u.mu.Lock()
		s := u.sessions[from]
		if s == nil {
			if len(u.sessions) >= p.cfg.MaxUDPSessions {
				u.mu.Unlock()
				pc.overLimit.Add(1)
				continue
			}
			s = &session{from: from, client: addr, queue: make(chan []byte, sessionQueue), stop: make(chan struct{})}
			s.touch()
			u.sessions[from] = s
			pc.accepted.Add(1)
			wg.Go(func() { u.run(ctx, s) })
		}
		u.mu.Unlock()
		select {
		case s.queue <- append([]byte(nil), buf[:n]...):
		default:
			pc.dropped.Add(1)
		}
	}
}

// remove forgets s, so that the client's next datagram starts a new session.
func (u *udpPort) remove(s *session) {
	u.mu.Lock()
	if u.sessions[s.from] == s {
		delete(u.sessions, s.from)
	}
	u.mu.Unlock()
}

// run is the life of one session: the flow check, the choice and dial of an endpoint,
// then datagrams both ways until the session is idle, its endpoint's drain ends, or
// ctx ends.
func (u *udpPort) run(ctx context.Context, s *session) {
	defer u.remove(s)
	p := u.p
	p.mu.Lock()
	sp := u.l.sp
	p.mu.Unlock()
	sp.Protocol = "udp"
	log := p.log.With("service", sp.Service, "port", sp.Port, "from", s.from.String())

	if p.cfg.Flows != nil {
		if err := p.cfg.Flows(s.from, sp); err != nil {
			u.pc.refused.Add(1)
			log.Info("UDP session refused by flow policy", "err", err)
			// Keep the refused session until it is idle: its datagrams are dropped
			// without asking the policy again for each one.
			u.discard(ctx, s)
			return
		}
	}

	c, err := p.connect(ctx, sp, u.pc, func(net.Conn) func() { return s.end })
	if err != nil {
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errNoEndpoint):
			u.pc.noEndpoint.Add(1)
			log.Debug("UDP session ended", "err", err)
		default:
			u.pc.unreachable.Add(1)
			log.Warn("UDP session ended", "err", err)
		}
		// The client's next datagram tries again.
		u.pc.dropped.Add(uint64(len(s.queue)))
		return
	}
	p.bal.Begin(c.ep)
	defer p.bal.End(c.ep)
	defer p.forget(c)
	defer c.backend.Close()
	u.relay(ctx, s, c.backend)
}

// relay carries the session's datagrams both ways until it ends, then closes backend's
// sending side and waits for its reader.
func (u *udpPort) relay(ctx context.Context, s *session, backend net.Conn) {
	readerDone := make(chan struct{})
	go func() { // owned by relay, which waits for it below
		defer close(readerDone)
		buf := make([]byte, 64<<10)
		for {
			n, err := backend.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // an ICMP refusal of an earlier datagram: that one was lost
			}
			if err != nil {
				return
			}
			s.touch()
			if _, err := u.l.pc.WriteTo(buf[:n], s.client); err != nil && errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()

	u.serveQueue(ctx, s, readerDone, func(msg []byte) bool {
		_, err := backend.Write(msg)
		return err == nil || errors.Is(err, syscall.ECONNREFUSED)
	})
	u.remove(s) // new datagrams of the client start a new session
	u.pc.dropped.Add(uint64(len(s.queue)))
	// A tunnel stream ends one side first, so that the far end sends what it still
	// has and the flow's receipt counts it; a socket is just closed.
	if cw, ok := backend.(closeWriter); ok && cw.CloseWrite() == nil {
		backend.SetReadDeadline(time.Now().Add(udpCloseGrace))
	} else {
		backend.Close()
	}
	<-readerDone
	// Closing a tunnel stream co-signs the flow's receipt, which reads the far end's
	// view: that read gets its own time, not what is left of the grace.
	backend.SetReadDeadline(time.Time{})
}

// discard drops a refused session's datagrams until it has been idle for the idle
// timeout or ctx ends.
func (u *udpPort) discard(ctx context.Context, s *session) {
	u.serveQueue(ctx, s, nil, func([]byte) bool {
		u.pc.dropped.Add(1)
		return true
	})
}

// serveQueue hands the session's datagrams to handle (false ends the session) until
// the session has been idle for the idle timeout, is stopped, done closes, or ctx ends.
func (u *udpPort) serveQueue(ctx context.Context, s *session, done <-chan struct{}, handle func(msg []byte) bool) {
	idle := u.p.cfg.UDPIdleTimeout
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case msg := <-s.queue:
			if !handle(msg) {
				return
			}
			s.touch()
		case <-timer.C:
			left := idle - time.Since(time.Unix(0, s.last.Load()))
			if left <= 0 {
				return
			}
			timer.Reset(left)
		case <-s.stop:
			return
		case <-done:
			return
		case <-ctx.Done():
			return
		}
	}
}
