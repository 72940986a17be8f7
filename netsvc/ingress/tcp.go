package ingress

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// tcpListener is the listener of one TCP route and the connections it spliced.
type tcpListener struct {
	in    *Ingress
	ln    net.Listener
	route atomic.Pointer[route] // the route in force; updates keep the listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newTCPListener(in *Ingress, ln net.Listener, rt *route) *tcpListener {
	l := &tcpListener{in: in, ln: ln, conns: map[net.Conn]struct{}{}}
	l.route.Store(rt)
	return l
}

func (l *tcpListener) port() int {
	if a, ok := l.ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return -1
}

// startTCP runs l's accept loop under Run's wait group.
func (in *Ingress) startTCP(l *tcpListener) {
	in.wg.Go(func() { l.accept(in.runCtx) })
}

// accept takes l's connections until its listener closes. Each is counted against its
// client's connections, then its rate, and spliced to the backend by a goroutine of
// its own under Run's wait group.
func (l *tcpListener) accept(ctx context.Context) {
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				l.in.log.Error("ingress: TCP accept failed; the route stops", "route", l.route.Load().String(), "err", err)
			}
			return
		}
		rt := l.route.Load()
		c := l.in.admit(raw)
		if c == nil {
			continue
		}
		if ok, _ := l.in.buckets.allow(rt.key, rt.RateLimit, clientOfConn(c), l.in.now()); !ok {
			rt.ctr.limited.Add(1)
			c.Close()
			continue
		}
		if !l.track(c) {
			c.Close()
			return
		}
		l.in.wg.Go(func() {
			defer l.untrack(c)
			l.serve(ctx, rt, c)
		})
	}
}

// serve dials the backend for c and copies both ways until both sides are done.
func (l *tcpListener) serve(ctx context.Context, rt *route, c net.Conn) {
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, l.in.cfg.DialTimeout)
	b, err := l.in.cfg.Backend.DialService(dctx, rt.Service, rt.Port)
	cancel()
	if err != nil {
		rt.ctr.backendErrors.Add(1)
		l.in.log.Warn("ingress: backend failed", "route", rt.String(), "err", err)
		return
	}
	rt.ctr.accepted.Add(1)
	if !l.track(b) {
		b.Close()
		return
	}
	defer l.untrack(b)
	defer b.Close()
	var wg sync.WaitGroup
	wg.Go(func() { pipe(b, c) })
	pipe(c, b)
	wg.Wait()
}

// pipe copies src to dst. At the end of src it half-closes dst, so the other end sees
// the end of the stream while the opposite direction goes on; a connection that cannot
// half-close, or a copy that failed, closes both whole.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		// A reset or a cut: the other direction has no one to talk to either.
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
	src.Close()
}

// track adds c to the connections close cuts; it reports false when l is closed.
func (l *tcpListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *tcpListener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}

// close stops l's listener and cuts its connections: the route went away, or Run is
// ending.
func (l *tcpListener) close() {
	l.ln.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
}
