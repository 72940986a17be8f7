// Package ingress is the door every QNet node keeps open to the outside: an exposed
// service answers on every node, over HTTP by its name (Host SERVICE.NETWORK.qnet, a
// host whose first label is SERVICE, or the path prefix /SERVICE/) and over TCP on a
// port of its own. On the way in, the ingress holds each client to its route's rate,
// refuses oversized headers and bodies, cuts slow clients, and checks JSON bodies
// against the route's schema, so that what reaches a service has passed all of it.
// What lies behind the door — which replica, on which node — is the Backend's business.
package ingress

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Backend opens connections to a port of a service; the node's proxy implements it,
// choosing a ready replica on this node or, through a tunnel, on another.
type Backend interface {
	DialService(ctx context.Context, service, port string) (net.Conn, error)
}

// Config is the configuration of an ingress. Zero limits take the defaults of
// DefaultConfig.
type Config struct {
	// HTTPAddr is where the HTTP ingress listens, like ":80" or "127.0.0.1:0".
	HTTPAddr string
	// TCPHost is the host the listeners of TCP routes bind, "" for every address.
	TCPHost string
	// Network is the network's name, the NETWORK of hosts SERVICE.NETWORK.qnet; ""
	// takes any network name.
	Network string
	// Routes is where the routes come from; Backend where their traffic goes.
	Routes  RouteSource
	Backend Backend
	Logger  *slog.Logger

	// MaxHeaderBytes bounds the request line and headers of an HTTP request; larger
	// requests get 431. net/http allows 4 KiB of slack above it.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body unless its route says otherwise; larger
	// bodies get 413.
	MaxBodyBytes int64
	// ReadHeaderTimeout is how long a client has to send a request's headers, counted
	// from the first byte: a client that trickles them (slow loris) is cut after it.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next request.
	IdleTimeout time.Duration
	// MaxConnsPerClient bounds the open connections of one client IP (IPv6: one /64),
	// HTTP and TCP together; more are closed at once.
	MaxConnsPerClient int
	// MaxTrackedClients bounds the rate-limit buckets kept in memory.
	MaxTrackedClients int
	// DialTimeout bounds opening a connection to the backend for a TCP route.
	DialTimeout time.Duration
	// ShutdownGrace is how long Run, once its context ends, lets requests in flight
	// finish before it cuts them.
	ShutdownGrace time.Duration
}

// DefaultConfig returns a configuration with the default limits and no addresses,
// routes or backend.
func DefaultConfig() Config {
	return Config{
		MaxHeaderBytes:    16 << 10,
		MaxBodyBytes:      1 << 20,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxConnsPerClient: 256,
		MaxTrackedClients: 100_000,
		DialTimeout:       10 * time.Second,
		ShutdownGrace:     5 * time.Second,
	}
}

// withDefaults fills the zero limits of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	c.MaxHeaderBytes = cmp.Or(c.MaxHeaderBytes, d.MaxHeaderBytes)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, d.MaxBodyBytes)
	c.ReadHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, d.IdleTimeout)
	c.MaxConnsPerClient = cmp.Or(c.MaxConnsPerClient, d.MaxConnsPerClient)
	c.MaxTrackedClients = cmp.Or(c.MaxTrackedClients, d.MaxTrackedClients)
	c.DialTimeout = cmp.Or(c.DialTimeout, d.DialTimeout)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, d.ShutdownGrace)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first problem of c, naming the field and what would be valid.
func (c Config) Validate() error {
	switch {
	case c.HTTPAddr == "":
		return errors.New("ingress: HTTPAddr is required, like \":80\" or \"127.0.0.1:0\"")
	case c.Routes == nil:
		return errors.New("ingress: Routes is required: a RouteSource such as a RouteTable")
	case c.Backend == nil:
		return errors.New("ingress: Backend is required: the node's proxy, which dials services")
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("ingress: MaxHeaderBytes %d is negative: want 0 (default 16 KiB) or more", c.MaxHeaderBytes)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("ingress: MaxBodyBytes %d is negative: want 0 (default 1 MiB) or more", c.MaxBodyBytes)
	case c.ReadHeaderTimeout < 0, c.IdleTimeout < 0, c.DialTimeout < 0, c.ShutdownGrace < 0:
		return errors.New("ingress: ReadHeaderTimeout, IdleTimeout, DialTimeout and ShutdownGrace must not be negative (0 takes the default)")
	case c.MaxConnsPerClient < 0:
		return fmt.Errorf("ingress: MaxConnsPerClient %d is negative: want 0 (default 256) or more", c.MaxConnsPerClient)
	case c.MaxTrackedClients < 0:
		return fmt.Errorf("ingress: MaxTrackedClients %d is negative: want 0 (default 100000) or more", c.MaxTrackedClients)
	case c.Network != "" && !dnsLabel.MatchString(c.Network):
		return fmt.Errorf("ingress: Network %q is not valid: want a DNS label (%s)", c.Network, dnsLabelRule)
	}
	return nil
}

// sweepEvery is how often Run drops the rate-limit buckets of clients that went
// quiet.
const sweepEvery = 30 * time.Second

// Ingress serves a node's exposed services. New opens its listeners; Run, called once,
// serves them and closes them when it returns, so every Ingress that New returns must
// be Run (with an ended context, to only release it).
type Ingress struct {
	cfg Config
	log *slog.Logger
	// now is the clock of rate limits, and sweepEvery how often Run drops the buckets
	// of quiet clients; tests replace them before Run.
	now        func() time.Time
	sweepEvery time.Duration

	httpLn  net.Listener
	srv     *http.Server
	table   atomic.Pointer[table]
	buckets *buckets
	conns   *connCounts
	handled inflight

	// refused counts connections closed for MaxConnsPerClient; notFound requests
	// that named no route.
	refused, notFound atomic.Uint64

	// The fields below belong to whoever applies routes: New, then Run's goroutine.
	changed   <-chan struct{}
	routes    map[string]*route       // by key, across updates
	listeners map[string]*tcpListener // TCP routes' listeners, by route key
	running   bool
	// retired are the pools of routes that went, kept until their last request ends
	// so that the connections it leaves idle are closed too.
	retired []*backendPool
	runCtx  context.Context
	wg      sync.WaitGroup
}

// New checks cfg, opens the HTTP listener and the listeners of the current TCP routes,
// and returns the ingress; Run serves them.
func New(cfg Config) (*Ingress, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	in := &Ingress{
		cfg:        cfg,
		log:        cfg.Logger.With("part", "ingress"),
		now:        time.Now,
		sweepEvery: sweepEvery,
		buckets:    newBuckets(cfg.MaxTrackedClients),
		conns:      newConnCounts(cfg.MaxConnsPerClient),
		routes:     map[string]*route{},
		listeners:  map[string]*tcpListener{},
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("ingress: listen on HTTPAddr %s: %w", cfg.HTTPAddr, err)
	}
	in.httpLn = &countingListener{Listener: ln, in: in}
	in.srv = &http.Server{
		Handler:           in,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelDebug),
	}
	in.changed = cfg.Routes.Changed()
	in.apply(cfg.Routes.Routes())
	return in, nil
}

// Addr is the address the HTTP ingress listens on.
func (in *Ingress) Addr() net.Addr { return in.httpLn.Addr() }

// TCPAddr is the address the TCP route of a service's port listens on, nil when there
// is no such route or its listener could not be opened.
func (in *Ingress) TCPAddr(service, port string) net.Addr {
	rt := in.table.Load().tcp[Route{Service: service, Port: port, TCP: true}.key()]
	if rt == nil || rt.addr == nil {
		return nil
	}
	return rt.addr
}

// Run serves until ctx ends or the HTTP listener fails, following the route source's
// changes; then it lets requests in flight finish for ShutdownGrace, cuts the rest,
// closes every listener and connection, and returns when all its goroutines have
// ended. It returns nil when ctx ended it.
func (in *Ingress) Run(ctx context.Context) error {
	// Handlers get a context that outlives ctx by the shutdown grace, so that requests
	// in flight can finish; cancelling it cuts proxied requests and upgrades.
	base, cutRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cutRequests()
	in.srv.BaseContext = func(net.Listener) context.Context { return base }
	in.runCtx = ctx

	serveErr := make(chan error, 1)
	in.wg.Go(func() {
		if err := in.srv.Serve(in.httpLn); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("ingress: serve HTTP on %s: %w", in.httpLn.Addr(), err)
		}
	})
	in.running = true
	for _, l := range in.listeners {
		in.startTCP(l)
	}
	in.log.Info("ingress serving", "http", in.httpLn.Addr().String())

	sweep := time.NewTicker(in.sweepEvery)
	defer sweep.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-serveErr:
			break loop
		case <-in.changed:
			in.changed = in.cfg.Routes.Changed()
			in.apply(in.cfg.Routes.Routes())
		case <-sweep.C:
			in.pruneRetired()
			in.buckets.sweep(in.now(), func(key string) bool { return in.routes[key] != nil })
		}
	}

	// Stop taking new work, give the work in flight its grace, then cut what is left.
	for key, l := range in.listeners {
		l.close()
		delete(in.listeners, key)
	}
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.ShutdownGrace)
	if serr := in.srv.Shutdown(graceCtx); serr != nil {
		in.log.Debug("ingress: requests cut at the end of the shutdown grace", "err", serr)
	}
	cancel()
	in.srv.Close()
	cutRequests()
	in.handled.closeAndWait()
	in.wg.Wait()
	for _, rt := range in.routes {
		rt.closeIdle()
	}
	for _, p := range in.retired {
		p.transport.CloseIdleConnections()
	}
	return err
}

// RouteStats are the counters of one route since it appeared.
type RouteStats struct {
	Route Route
	// Accepted counts requests (TCP: connections) that passed every check and went to
	// the backend; the others below never reached the service.
	Accepted uint64
	// Limited counts those refused by the client's rate limit (429, or a TCP
	// connection closed at once).
	Limited uint64
	// SchemaRejected counts bodies that were not JSON, not of a JSON type (415), or
	// not accepted by the schema (400).
	SchemaRejected uint64
	// BackendErrors counts requests and connections the backend failed (502).
	BackendErrors uint64
	// TooLarge counts bodies larger than the route's limit (413).
	TooLarge uint64
	// Err is why the route cannot serve (a schema that does not compile, a port in
	// use), "" when it can.
	Err string
}

// Stats are the counters of an ingress.
type Stats struct {
	// Routes has one entry per current route, HTTP routes by service then TCP routes.
	Routes []RouteStats
	// NotFound counts HTTP requests that named no route (404).
	NotFound uint64
	// RefusedConns counts connections closed because their client had
	// MaxConnsPerClient open.
	RefusedConns uint64
	// TrackedClients is the number of rate-limit buckets held in memory.
	TrackedClients int
}

// Stats returns the current counters.
func (in *Ingress) Stats() Stats {
	t := in.table.Load()
	s := Stats{NotFound: in.notFound.Load(), RefusedConns: in.refused.Load(), TrackedClients: in.buckets.len()}
	for _, m := range []map[string]*route{t.http, t.tcp} {
		for _, rt := range m {
			rs := RouteStats{
				Route:          rt.Route,
				Accepted:       rt.ctr.accepted.Load(),
				Limited:        rt.ctr.limited.Load(),
				SchemaRejected: rt.ctr.schemaRejected.Load(),
				BackendErrors:  rt.ctr.backendErrors.Load(),
				TooLarge:       rt.ctr.tooLarge.Load(),
			}
			if rt.err != nil {
				rs.Err = rt.err.Error()
			}
			s.Routes = append(s.Routes, rs)
		}
	}
	slices.SortFunc(s.Routes, func(a, b RouteStats) int {
		return cmp.Or(cmp.Compare(a.Route.key(), b.Route.key()), cmp.Compare(a.Route.Port, b.Route.Port))
	})
	return s
}

// counters are a route's counters; they live as long as the route's key.
type counters struct {
	accepted, limited, schemaRejected, backendErrors, tooLarge atomic.Uint64
}

// route is a Route ready to serve.
type route struct {
	Route
	key    string
	schema *jsonschema.Schema
	// maxBody is the route's body limit with the default applied.
	maxBody int64
	ctr     *counters
	// err is why the route cannot serve; requests to it get 503.
	err error
	// pool is the HTTP route's keep-alive connections to its service.
	pool *backendPool
	// addr is where a TCP route listens.
	addr net.Addr
}

func (rt *route) closeIdle() {
	if rt.pool != nil {
		rt.pool.transport.CloseIdleConnections()
	}
}

// table is the routes in force; it is replaced whole at every change, so a request
// sees one consistent set.
type table struct {
	http map[string]*route // HTTP routes by service name
	tcp  map[string]*route // TCP routes by key
}

// apply makes routes the routes in force: it compiles them, keeps the pools, counters
// and listeners of routes that stay, opens listeners for new TCP routes and closes
// those of routes that went. A route that cannot serve is kept with its error: HTTP
// requests to it get 503 rather than skipping its checks.
func (in *Ingress) apply(routes []Route) {
	next := &table{http: map[string]*route{}, tcp: map[string]*route{}}
	prev := in.routes
	in.routes = map[string]*route{}
	for _, r := range routes {
		key := r.key()
		if _, dup := in.routes[key]; dup {
			in.log.Error("ingress: route ignored: its service already has one", "route", r.String(), "why",
				"expose one HTTP port per service; other ports can be TCP routes")
			continue
		}
		rt := &route{Route: r, key: key, maxBody: cmp.Or(r.MaxBodyBytes, in.cfg.MaxBodyBytes)}
		rt.schema, rt.err = r.compileSchema()
		if rt.err != nil {
			in.log.Error("ingress: route cannot serve", "route", r.String(), "err", rt.err)
		}
		if old := prev[key]; old != nil {
			rt.ctr, rt.pool = old.ctr, old.pool
			if rt.pool != nil && rt.pool.port != r.Port {
				rt.pool.transport.CloseIdleConnections()
				rt.pool = nil
			}
		} else {
			rt.ctr = &counters{}
		}
		if !r.TCP && rt.pool == nil {
			rt.pool = newBackendPool(in.cfg.Backend, r.Service, r.Port)
		}
		in.routes[key] = rt
		if r.TCP {
			next.tcp[key] = rt
		} else {
			next.http[r.Service] = rt
		}
	}
	for key, old := range prev {
		if old.pool != nil && (in.routes[key] == nil || in.routes[key].pool != old.pool) {
			old.closeIdle()
			in.retired = append(in.retired, old.pool)
		}
	}
	in.applyTCP(next)
	in.table.Store(next)
}

// pruneRetired closes the idle connections of retired pools that serve no request
// any more, and forgets them. A request that loaded the old table an instant before
// may still leave a connection idle in a forgotten pool; the pool's idle timeout
// closes it.
func (in *Ingress) pruneRetired() {
	in.retired = slices.DeleteFunc(in.retired, func(p *backendPool) bool {
		p.transport.CloseIdleConnections()
		return p.active.Load() == 0
	})
}

// applyTCP opens, keeps or closes the TCP listeners so they match t.
func (in *Ingress) applyTCP(t *table) {
	for key, l := range in.listeners {
		rt := t.tcp[key]
		if rt == nil || rt.err != nil || (rt.ListenPort != 0 && rt.ListenPort != l.port()) {
			l.close()
			delete(in.listeners, key)
		}
	}
	for key, rt := range t.tcp {
		if rt.err != nil {
			continue
		}
		if l := in.listeners[key]; l != nil {
			l.route.Store(rt)
			rt.addr = l.ln.Addr()
			continue
		}
		addr := net.JoinHostPort(in.cfg.TCPHost, fmt.Sprint(rt.ListenPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			rt.err = fmt.Errorf("listen on %s: %w", addr, err)
			in.log.Error("ingress: TCP route cannot serve", "route", rt.String(), "err", err)
			continue
		}
		l := newTCPListener(in, ln, rt)
		in.listeners[key] = l
		rt.addr = ln.Addr()
		if in.running {
			in.startTCP(l)
		}
	}
}

// countingListener closes, at once, the connections of clients that have
// MaxConnsPerClient open already, and counts the rest.
type countingListener struct {
	net.Listener
	in *Ingress
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if cc := l.in.admit(c); cc != nil {
			return cc, nil
		}
	}
}

// admit counts c against its client's connections and returns it wrapped to release
// the count at Close; nil, with c closed, when the client has too many.
func (in *Ingress) admit(c net.Conn) net.Conn {
	client := clientOfConn(c)
	if !in.conns.acquire(client) {
		in.refused.Add(1)
		in.log.Debug("ingress: connection refused: client has too many", "client", client.String(), "max", in.cfg.MaxConnsPerClient)
		c.Close()
		return nil
	}
	return &countedConn{Conn: c, release: func() { in.conns.release(client) }}
}

// inflight tracks the HTTP handlers running, so that Run can wait for the last one:
// net/http does not wait for handlers of connections it has closed.
type inflight struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   *sync.Cond
}

// enter counts a handler in; it reports false once Run has shut down.
func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.n == 0 && f.zero != nil {
		f.zero.Broadcast()
	}
}

func (f *inflight) closeAndWait() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.zero == nil {
		f.zero = sync.NewCond(&f.mu)
	}
	for f.n > 0 {
		f.zero.Wait()
	}
}

// clientAddr is the client key of an HTTP request's peer.
func clientAddr(r *http.Request) netip.Prefix { return clientOf(r.RemoteAddr) }
