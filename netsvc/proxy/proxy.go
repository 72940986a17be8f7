// Package proxy is the per-node proxy and load balancer of QNet: it listens on every
// port of every service at the service's stable address (VIP:port) and sends each
// connection to one ready replica of that service, preferring replicas on this node,
// then splices the two connections until both sides are done. Replicas that leave the
// catalog get no new connections, and their open ones are closed after a grace.
//
// A udp port has sessions instead of connections: the first datagram from a client
// address picks a replica, as a connection does, and the session carries datagrams
// both ways until it has been idle for Config.UDPIdleTimeout (see udp.go).
package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"qnet.dev/qnet/ctxtime"
	"qnet.dev/qnet/netsvc"
)

// Config is what a Proxy needs. Catalog and Dialer are required; every other zero
// field takes its default.
type Config struct {
	// Catalog gives the service ports to listen on and their ready endpoints.
	Catalog netsvc.Catalog
	// Dialer opens connections to endpoints.
	Dialer netsvc.Dialer
	// Logger receives the proxy's logs; nil means slog.Default().
	Logger *slog.Logger
	// DialTimeout bounds one dial to an endpoint (default 3s).
	DialTimeout time.Duration
	// DrainGrace is how long a connection to an endpoint that left the catalog may
	// go on before it is closed (default 30s).
	DrainGrace time.Duration
	// MaxAttempts bounds the endpoints tried for one connection (default 3).
	MaxAttempts int
	// Listen opens a listener; nil means net.Listen.
	Listen func(network, addr string) (net.Listener, error)
	// ListenPacket opens the socket of a udp port; nil means net.ListenPacket.
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// UDPIdleTimeout ends a UDP session that carried no datagram either way for that
	// long (default 60s).
	UDPIdleTimeout time.Duration
	// MaxUDPSessions bounds the sessions of one udp port (default 4096): datagrams
	// from new clients beyond it are dropped and counted (PortStats.OverLimit).
	MaxUDPSessions int
	// Flows, when set, is asked about every accepted connection (and the first
	// datagram of every UDP session) before an endpoint is chosen; an error refuses
	// the connection (it is closed, logged and counted) or the session (its datagrams
	// are dropped until it has been idle for UDPIdleTimeout).
	Flows func(from netip.AddrPort, sp netsvc.ServicePort) error
	// Bind returns the address to listen on for a service port; nil means
	// VIP:Number. An empty answer means the port cannot be offered.
	Bind func(sp netsvc.ServicePort) string
	// Balancer chooses endpoints; nil means a new one with the default config. Tests
	// pass one with a fixed seed or clock.
	Balancer *Balancer
}

// Defaults of Config.
const (
	DefaultDialTimeout = 3 * time.Second
	DefaultDrainGrace  = 30 * time.Second
	DefaultMaxAttempts = 3

	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultMaxUDPSessions = 4096
)

// listenRetry is how long the proxy waits before it tries again to open listeners
// that failed (the VIP may not be on an interface yet, or a port still in use).
const listenRetry = time.Second

// Validate reports what is missing or out of range in c.
func (c Config) Validate() error {
	var errs []error
	if c.Catalog == nil {
		errs = append(errs, errors.New("Catalog is nil: want the node's service catalog"))
	}
	if c.Dialer == nil {
		errs = append(errs, errors.New("Dialer is nil: want a dialer of endpoints (direct to local ones, through tunnels to remote ones)"))
	}
	if c.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout is %s: want a positive duration such as 3s, or 0 for the default", c.DialTimeout))
	}
	if c.DrainGrace < 0 {
		errs = append(errs, fmt.Errorf("DrainGrace is %s: want a positive duration such as 30s, or 0 for the default", c.DrainGrace))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("MaxAttempts is %d: want a positive count such as 3, or 0 for the default", c.MaxAttempts))
	}
	if c.UDPIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("UDPIdleTimeout is %s: want a positive duration such as 60s, or 0 for the default", c.UDPIdleTimeout))
	}
	if c.MaxUDPSessions < 0 {
		errs = append(errs, fmt.Errorf("MaxUDPSessions is %d: want a positive count such as 4096, or 0 for the default", c.MaxUDPSessions))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("proxy config: %w", err)
	}
	return nil
}

// Proxy listens on the service ports of the catalog and balances their connections.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	bal     *Balancer
	running atomic.Bool

	mu        sync.Mutex
	closing   bool
	listeners map[portKey]*listener
	ports     map[portKey]*portCounters
	conns     map[*conn]struct{}
}

// portKey names a service port.
type portKey struct{ service, port string }

// listener is the listener of one service port: ln for a tcp port, pc for a udp one.
type listener struct {
	key    portKey
	sp     netsvc.ServicePort // the latest from the catalog; guarded by Proxy.mu
	bind   string
	ln     net.Listener
	pc     net.PacketConn
	cancel context.CancelFunc
}

func (l *listener) close() {
	if l.ln != nil {
		l.ln.Close()
	} else {
		l.pc.Close()
	}
	l.cancel()
}

func (l *listener) addr() net.Addr {
	if l.ln != nil {
		return l.ln.Addr()
	}
	return l.pc.LocalAddr()
}

// conn is one proxied connection or UDP session.
type conn struct {
	ep       netsvc.Endpoint
	key      Key
	port     *portCounters
	backend  net.Conn
	end      func()      // ends it: closes a connection's two sides, stops a session
	drain    *time.Timer // set while the endpoint is out of the catalog
	drainGen uint64      // tells one drain from the next
}

// portCounters counts what happened to the connections of one service port.
type portCounters struct {
	proto                                               string
	addr, listenErr                                     string // guarded by Proxy.mu
	accepted, refused, noEndpoint, unreachable, drained atomic.Uint64
	overLimit, dropped                                  atomic.Uint64 // udp ports only
}

// Stats is a snapshot of a proxy's books.
type Stats struct {
	// Endpoints are the endpoints the balancer knows, with their connections and
	// latencies.
	Endpoints []EndpointStats
	// Ports are the service ports the proxy offers.
	Ports []PortStats
}

// PortStats counts the connections of one service port.
type PortStats struct {
	Service, Port string
	Protocol      string // tcp or udp
	// Addr is where the port listens; empty when it does not, and then ListenErr says
	// why.
	Addr      string
	ListenErr string
	// Accepted counts every connection accepted. Of those, Refused were refused by the
	// Flows hook, NoEndpoint found no ready endpoint, Unreachable found endpoints but
	// could dial none, and Drained were closed when their endpoint's drain grace ended.
	// For a udp port these count sessions.
	Accepted, Refused, NoEndpoint, Unreachable, Drained uint64
	// OverLimit counts the datagrams of new clients dropped because the udp port had
	// Config.MaxUDPSessions sessions; Dropped the other datagrams the proxy dropped (a
	// session's queue was full, or the session was refused or had no endpoint).
	OverLimit, Dropped uint64
}

// New returns a proxy; Run starts it.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.DrainGrace == 0 {
		cfg.DrainGrace = DefaultDrainGrace
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Listen == nil {
		cfg.Listen = net.Listen
	}
	if cfg.ListenPacket == nil {
		cfg.ListenPacket = net.ListenPacket
	}
	if cfg.UDPIdleTimeout == 0 {
		cfg.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	if cfg.MaxUDPSessions == 0 {
		cfg.MaxUDPSessions = DefaultMaxUDPSessions
	}
	if cfg.Bind == nil {
		cfg.Bind = DefaultBind
	}
	bal := cfg.Balancer
	if bal == nil {
		var err error
		if bal, err = NewBalancer(BalancerConfig{}); err != nil {
			return nil, err
		}
	}
	return &Proxy{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "proxy"),
		bal:       bal,
		listeners: map[portKey]*listener{},
		ports:     map[portKey]*portCounters{},
		conns:     map[*conn]struct{}{},
	}, nil
}

// DefaultBind returns VIP:Number, or "" when the service port has no valid VIP or
// port number.
func DefaultBind(sp netsvc.ServicePort) string {
	if !sp.VIP.IsValid() || sp.Number < 1 || sp.Number > 65535 {
		return ""
	}
	return net.JoinHostPort(sp.VIP.String(), strconv.Itoa(sp.Number))
}

// isTCP reports whether sp is a tcp port; an empty protocol is TCP, the manifest's
// default.
func isTCP(sp netsvc.ServicePort) bool { return sp.Protocol == "tcp" || sp.Protocol == "" }

// proxied reports whether the proxy serves sp: tcp and udp ports.
func proxied(sp netsvc.ServicePort) bool { return isTCP(sp) || sp.Protocol == "udp" }

// Run keeps one listener per service port of the catalog and serves connections
// until ctx ends; then it closes every listener and every proxied connection and
// returns nil once all its goroutines have ended. A listener that cannot be opened is
// logged, shown in Stats and tried again. Run may be called once.
func (p *Proxy) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("proxy: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		p.closeAll()
		wg.Wait()
	}()
	for {
		// Take the channel before reading the catalog, so that no change is missed.
		changed := p.cfg.Catalog.Changed()
		failed := p.reconcile(ctx, &wg)
		var retry <-chan time.Time
		var timer *time.Timer
		if failed {
			timer = time.NewTimer(listenRetry)
			retry = timer.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// reconcile brings the listeners and the drains in line with the catalog; it reports
// whether a listener failed to open and should be tried again.
func (p *Proxy) reconcile(ctx context.Context, wg *sync.WaitGroup) (failed bool) {
	want := map[portKey]netsvc.ServicePort{}
	for _, sp := range p.cfg.Catalog.Ports() {
		if proxied(sp) {
			want[portKey{sp.Service, sp.Port}] = sp
		}
	}

	p.mu.Lock()
	for k, l := range p.listeners {
		sp, ok := want[k]
		if ok && p.cfg.Bind(sp) == l.bind && isTCP(sp) == isTCP(l.sp) {
			l.sp = sp
			continue
		}
		p.log.Info("closing service port", "service", k.service, "port", k.port, "addr", l.addr().String())
		l.close()
		delete(p.listeners, k)
		if pc := p.ports[k]; pc != nil {
			pc.addr = ""
		}
	}
	for k := range p.ports {
		if _, ok := want[k]; !ok {
			delete(p.ports, k)
		}
	}
	var open []portKey
	for k := range want {
		if p.listeners[k] == nil {
			open = append(open, k)
		}
		if p.ports[k] == nil {
			p.ports[k] = &portCounters{proto: cmp.Or(want[k].Protocol, "tcp")}
		}
	}
	p.mu.Unlock()

	for _, k := range open {
		sp := want[k]
		if err := p.open(ctx, wg, k, sp); err != nil {
			p.mu.Lock()
			if pc := p.ports[k]; pc != nil {
				pc.addr, pc.listenErr = "", err.Error()
			}
			p.mu.Unlock()
			p.log.Warn("cannot offer service port", "service", k.service, "port", k.port, "err", err)
			failed = failed || !errors.Is(err, errNoBind)
		}
	}

	p.drain()
	return failed
}

var errNoBind = errors.New("no address to listen on (the service port has no valid VIP or port number)")

// open starts serving one service port.
func (p *Proxy) open(ctx context.Context, wg *sync.WaitGroup, k portKey, sp netsvc.ServicePort) error {
	bind := p.cfg.Bind(sp)
	if bind == "" {
		return errNoBind
	}
	lctx, cancel := context.WithCancel(ctx)
	l := &listener{key: k, sp: sp, bind: bind, cancel: cancel}
	var err error
	if isTCP(sp) {
		l.ln, err = p.cfg.Listen("tcp", bind)
	} else {
		l.pc, err = p.cfg.ListenPacket("udp", bind)
	}
	if err != nil {
		cancel()
		return fmt.Errorf("listen on %s/%s: %w", bind, cmp.Or(sp.Protocol, "tcp"), err)
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		l.close()
		return nil
	}
	p.listeners[k] = l
	pc := p.ports[k]
	pc.addr, pc.listenErr, pc.proto = l.addr().String(), "", cmp.Or(sp.Protocol, "tcp")
	p.mu.Unlock()
	p.log.Info("offering service port", "service", k.service, "port", k.port, "protocol", cmp.Or(sp.Protocol, "tcp"), "addr", pc.addr)
	if l.ln != nil {
		wg.Go(func() { p.accept(lctx, wg, l, pc) })
	} else {
		wg.Go(func() { p.serveUDP(lctx, wg, l, pc) })
	}
	return nil
}

// accept serves the connections of one listener until it is closed.
func (p *Proxy) accept(ctx context.Context, wg *sync.WaitGroup, l *listener, pc *portCounters) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if !p.pause(ctx, l, "accept", err, &backoff) {
				return
			}
			continue
		}
		backoff = 5 * time.Millisecond
		pc.accepted.Add(1)
		wg.Go(func() { p.serve(ctx, l, pc, c) })
	}
}

// serve proxies one accepted connection.
func (p *Proxy) serve(ctx context.Context, l *listener, pc *portCounters, client net.Conn) {
	p.mu.Lock()
	sp := l.sp
	p.mu.Unlock()
	from := addrPortOf(client.RemoteAddr())
	var allow func() error
	if p.cfg.Flows != nil {
		allow = func() error { return p.cfg.Flows(from, sp) }
	}
	p.proxyConn(ctx, sp, pc, client, allow, p.log.With("service", sp.Service, "port", sp.Port, "from", from.String()))
}

// ServeConn proxies client, a connection for service port sp that reached the node
// other than through the proxy's listener for it (a container's connections to any
// VIP arrive at one socket in its network namespace), as if it had come to that
// listener: counted in the port's stats, refused (and counted) when allow, if not
// nil, returns an error, balanced over the ready endpoints and drained when its
// endpoint leaves. It returns once the connection is done, and closes it; when ctx
// ends first, the connection is cut. It fails, having closed client, when the proxy
// has no such TCP port.
func (p *Proxy) ServeConn(ctx context.Context, sp netsvc.ServicePort, client net.Conn, allow func() error) error {
	p.mu.Lock()
	pc := p.ports[portKey{sp.Service, sp.Port}]
	tcp := pc != nil && pc.proto == "tcp"
	p.mu.Unlock()
	if !tcp {
		client.Close()
		return fmt.Errorf("proxy: no TCP service port %s/%s", sp.Service, sp.Port)
	}
	pc.accepted.Add(1)
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	p.proxyConn(ctx, sp, pc, client, allow, p.log.With("service", sp.Service, "port", sp.Port, "from", client.RemoteAddr().String()))
	return nil
}

// proxyConn proxies one connection to sp, refused when allow (if not nil) says so.
func (p *Proxy) proxyConn(ctx context.Context, sp netsvc.ServicePort, pc *portCounters, client net.Conn, allow func() error, log *slog.Logger) {
	if allow != nil {
		if err := allow(); err != nil {
			pc.refused.Add(1)
			log.Info("connection refused by flow policy", "err", err)
			client.Close()
			return
		}
	}

	c, err := p.connect(ctx, sp, pc, func(backend net.Conn) func() {
		return func() {
			client.Close()
			backend.Close()
		}
	})
	if err != nil {
		client.Close()
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errNoEndpoint):
			pc.noEndpoint.Add(1)
			log.Debug("connection closed", "err", err)
		default:
			pc.unreachable.Add(1)
			log.Warn("connection closed", "err", err)
		}
		return
	}
	p.bal.Begin(c.ep)
	splice(client, c.backend)
	p.bal.End(c.ep)
	p.forget(c)
}

var errNoEndpoint = errors.New("no ready endpoint")

// connect dials an endpoint of sp chosen by the balancer, trying others when a dial
// fails, and registers the connection, which endFor(backend) ends.
func (p *Proxy) connect(ctx context.Context, sp netsvc.ServicePort, pc *portCounters, endFor func(backend net.Conn) func()) (*conn, error) {
	var c *conn
	err := p.dial(ctx, sp, func(e netsvc.Endpoint, backend net.Conn) (bool, error) {
		k := KeyOf(e)
		c = &conn{ep: e, key: k, port: pc, backend: backend, end: endFor(backend)}
		if !p.register(c) {
			backend.Close()
			return true, net.ErrClosed
		}
		// The endpoint may have left the catalog while it was dialled; a drain that
		// ran before register did not see this connection, so look again.
		if !p.inCatalog(sp, k) {
			p.forget(c)
			backend.Close()
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialService opens a connection to a ready endpoint of a service's port as the
// proxy's own connections are opened: the balancer's choice, local first, other
// endpoints tried when a dial fails. The node's ingress reaches services through it.
// Closing the connection tells the balancer it ended.
func (p *Proxy) DialService(ctx context.Context, service, port string) (net.Conn, error) {
	var out net.Conn
	err := p.dial(ctx, netsvc.ServicePort{Service: service, Port: port}, func(e netsvc.Endpoint, backend net.Conn) (bool, error) {
		p.bal.Begin(e)
		out = &countedConn{Conn: backend, end: func() { p.bal.End(e) }}
		return true, nil
	})
	return out, err
}

// dial dials endpoints of sp that the balancer chooses, up to MaxAttempts, reading the
// candidates from the catalog afresh before each (so no endpoint that has left it is
// tried), and hands each backend it reaches to use, which says whether it is done
// (with its error) or another endpoint should be tried. It fails when none answered.
func (p *Proxy) dial(ctx context.Context, sp netsvc.ServicePort, use func(e netsvc.Endpoint, backend net.Conn) (done bool, err error)) error {
	var tried []Key
	var errs []error
	for range p.cfg.MaxAttempts {
		e, backend, err := p.dialOne(ctx, sp, &tried)
		if errors.Is(err, errNoEndpoint) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		if done, err := use(e, backend); done {
			return err
		}
	}
	return noneAnswered(sp, errs)
}

// dialOne dials one endpoint of sp that is not in tried, chosen by the balancer, adds
// it to tried and tells the balancer how the dial went. errNoEndpoint: none is left.
func (p *Proxy) dialOne(ctx context.Context, sp netsvc.ServicePort, tried *[]Key) (netsvc.Endpoint, net.Conn, error) {
	cands := p.candidates(sp, *tried)
	e, ok := p.bal.Pick(cands)
	if len(cands) == 0 || !ok {
		return netsvc.Endpoint{}, nil, errNoEndpoint
	}
	if sp.Protocol != "" {
		e.Protocol = sp.Protocol // the Dialer opens a datagram socket for udp
	}
	k := KeyOf(e)
	*tried = append(*tried, k)
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	start := p.bal.now()
	backend, err := p.cfg.Dialer.DialEndpoint(dctx, e)
	took := p.bal.now().Sub(start)
	cancel()
	if err != nil && ctx.Err() != nil {
		return e, nil, ctx.Err()
	}
	p.bal.Observe(e, took, err)
	if err != nil {
		p.log.Debug("dial failed", "endpoint", k.String(), "err", err)
		return e, nil, fmt.Errorf("dial %s: %w", k, err)
	}
	return e, backend, nil
}

// noneAnswered is the error of a connection no endpoint of sp took.
func noneAnswered(sp netsvc.ServicePort, errs []error) error {
	if len(errs) > 0 {
		return fmt.Errorf("no endpoint of %s/%s answered: %w", sp.Service, sp.Port, errors.Join(errs...))
	}
	return fmt.Errorf("%s/%s: %w", sp.Service, sp.Port, errNoEndpoint)
}

// countedConn tells the balancer when a connection it chose ends.
type countedConn struct {
	net.Conn
	once sync.Once
	end  func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.end)
	return c.Conn.Close()
}

// CloseWrite passes a half-close on when the connection can do one.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// candidates returns the ready endpoints of sp in the catalog that are not in tried.
func (p *Proxy) candidates(sp netsvc.ServicePort, tried []Key) []netsvc.Endpoint {
	eps := p.cfg.Catalog.Endpoints(sp.Service, sp.Port)
	out := eps[:0:0]
	for _, e := range eps {
		if e.Ready && e.Service == sp.Service && e.Port == sp.Port && !slices.Contains(tried, KeyOf(e)) {
			out = append(out, e)
		}
	}
	return out
}

func (p *Proxy) inCatalog(sp netsvc.ServicePort, k Key) bool {
	for _, e := range p.cfg.Catalog.Endpoints(sp.Service, sp.Port) {
		if e.Ready && KeyOf(e) == k {
			return true
		}
	}
	return false
}

// register adds c to the open connections; false when the proxy is stopping.
func (p *Proxy) register(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// forget removes c from the open connections.
func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	if c.drain != nil {
		c.drain.Stop()
		c.drain = nil
	}
}

// drain starts the grace of every connection whose endpoint left the catalog (or is
// no longer ready) and stops it for those whose endpoint came back. It also lets the
// balancer forget endpoints that are gone.
func (p *Proxy) drain() {
	var all []netsvc.Endpoint
	current := map[Key]bool{}
	for _, sp := range p.cfg.Catalog.Ports() {
		if !proxied(sp) {
			continue
		}
		for _, e := range p.cfg.Catalog.Endpoints(sp.Service, sp.Port) {
			if e.Ready {
				all = append(all, e)
				current[KeyOf(e)] = true
			}
		}
	}
	p.bal.Prune(all)

	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		switch {
		case current[c.key] && c.drain != nil:
			c.drain.Stop()
			c.drain = nil
			p.log.Info("endpoint is back, connection kept", "endpoint", c.key.String())
		case !current[c.key] && c.drain == nil:
			c.drainGen++
			gen := c.drainGen
			c.drain = time.AfterFunc(p.cfg.DrainGrace, func() { p.expire(c, gen) })
			p.log.Info("endpoint left the catalog, draining connection", "endpoint", c.key.String(), "grace", p.cfg.DrainGrace)
		}
	}
}

// expire closes c if the drain gen is still running: a timer stopped too late to keep
// its function from starting must not close a connection whose drain was called off.
func (p *Proxy) expire(c *conn, gen uint64) {
	p.mu.Lock()
	if c.drain == nil || c.drainGen != gen {
		p.mu.Unlock()
		return
	}
	c.drain = nil
	p.mu.Unlock()
	c.port.drained.Add(1)
	p.log.Info("drain grace over, closing connection", "endpoint", c.key.String())
	c.end()
}

// closeAll closes every listener and connection, and refuses new ones.
func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closing = true
	for k, l := range p.listeners {
		l.close()
		delete(p.listeners, k)
	}
	for _, pc := range p.ports {
		pc.addr = ""
	}
	for c := range p.conns {
		if c.drain != nil {
			c.drain.Stop()
			c.drain = nil
		}
		c.end()
	}
}

// Addr returns the address the proxy listens on for a port of a service; false when it
// does not listen for it.
func (p *Proxy) Addr(service, port string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.listeners[portKey{service, port}]
	if l == nil {
		return "", false
	}
	return l.addr().String(), true
}

// Stats returns a snapshot of the proxy's books.
func (p *Proxy) Stats() Stats {
	s := Stats{Endpoints: p.bal.Stats()}
	p.mu.Lock()
	for k, pc := range p.ports {
		s.Ports = append(s.Ports, PortStats{
			Service:     k.service,
			Port:        k.port,
			Protocol:    pc.proto,
			Addr:        pc.addr,
			ListenErr:   pc.listenErr,
			Accepted:    pc.accepted.Load(),
			Refused:     pc.refused.Load(),
			NoEndpoint:  pc.noEndpoint.Load(),
			Unreachable: pc.unreachable.Load(),
			Drained:     pc.drained.Load(),
			OverLimit:   pc.overLimit.Load(),
			Dropped:     pc.dropped.Load(),
		})
	}
	p.mu.Unlock()
	slices.SortFunc(s.Ports, func(a, b PortStats) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Port, b.Port))
	})
	return s
}

// addrPortOf returns a net.Addr as an AddrPort, IPv4 unmapped; zero when it is not IP.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// closeWriter is a connection that can end its sending side alone.
type closeWriter interface{ CloseWrite() error }

// pause logs a failed accept or read on a port's socket (out of file descriptors and
// the like) and waits before the next try, twice as long as the last time in a row, up
// to a second. It returns false when ctx ended meanwhile.
func (p *Proxy) pause(ctx context.Context, l *listener, op string, err error, backoff *time.Duration) bool {
	p.log.Warn(op+" failed", "service", l.key.service, "port", l.key.port, "err", err, "retry_in", *backoff)
	if !ctxtime.Sleep(ctx, *backoff) {
		return false
	}
	*backoff = min(2**backoff, time.Second)
	return true
}

// copyBufs holds the buffers of copyConn.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// copyBuf is the size of copyConn's buffer: a read that fills it marks a bulk stream.
// An idle kept-alive connection holds one each way, so it is kept small.
const copyBuf = 8 << 10

// copyConn copies src to dst until src ends. Requests and answers, which a read takes
// whole, go through a buffer: for them read(2) and write(2) cost less than Linux's
// splice(2) through a pipe, which io.Copy uses between two TCP connections (the
// proxy's CPU per round trip in BenchmarkProxyCPU: 11.8 against 12.3 µs). Once a read fills the
// buffer, the stream is a bulk transfer, and the rest goes by io.Copy, which for TCP
// copies nothing through user space. It returns nil when src ended cleanly.
func copyConn(dst, src net.Conn) error {
	bp := copyBufs.Get().(*[]byte)
	for {
		n, err := src.Read(*bp)
		if n > 0 {
			if _, werr := dst.Write((*bp)[:n]); werr != nil {
				copyBufs.Put(bp)
				return werr
			}
		}
		if err != nil || n == len(*bp) {
			copyBufs.Put(bp)
			switch {
			case err == io.EOF:
				return nil
			case err != nil:
				return err
			}
			_, err := io.Copy(dst, src)
			return err
		}
	}
}

// splice copies a to b and b to a. When one side finishes sending, the other is told
// with a half close, and the other direction goes on; an error either way closes both.
// It returns when both directions are done, with both connections closed.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { pipe(b, a) })
	pipe(a, b)
	wg.Wait()
	a.Close()
	b.Close()
}

// pipe copies src to dst until src ends. A connection without CloseWrite is closed
// instead: for a yamux stream (what tunnels carry) Close is the half close.
func pipe(dst, src net.Conn) {
	if err := copyConn(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(closeWriter); ok {
		if cw.CloseWrite() != nil {
			dst.Close()
			src.Close()
		}
		return
	}
	dst.Close()
}
