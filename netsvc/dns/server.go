package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"qnet.dev/qnet/netsvc"
)

// DefaultTTL is the TTL of the answers when Config.TTL is zero: short, because which
// replicas are ready changes all the time and a cached answer outlives the change.
const DefaultTTL = 5 * time.Second

// Limits of the server, chosen so that a flood or a bad client costs a bounded amount.
const (
	// ednsSize is the largest UDP reply sent, whatever a client advertises: 1232 bytes
	// fit in one packet on any path (DNS flag day 2020), so replies never fragment.
	ednsSize = 1232
	// readSize is the UDP read buffer; a longer datagram is cut and fails to unpack.
	readSize = 4096
	// writeTimeout bounds a TCP write, so a client that never reads cannot hold a
	// goroutine (and shutdown) forever.
	writeTimeout = 2 * time.Second
	// forwardTimeout bounds one exchange with an upstream.
	forwardTimeout = 2 * time.Second
	// maxForwards bounds the queries in flight to upstreams; beyond it queries are
	// answered SERVFAIL at once, so a slow upstream cannot pile up goroutines.
	maxForwards = 256
)

// Config is what a Server needs.
type Config struct {
	// Catalog gives the network's name, its services and their ready endpoints.
	Catalog netsvc.Catalog
	// Addr is where to listen, host:port, on both UDP and TCP. Port 0 picks a free
	// port (the same for both); Server.Addr reports it.
	Addr string
	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger
	// TTL is the TTL of the answers, in whole seconds; DefaultTTL when zero.
	TTL time.Duration
	// Upstream are resolvers (host:port) asked, in order, for names outside qnet.;
	// when empty such queries are REFUSED.
	Upstream []string
}

// Server is a DNS server for a network's zone. Build it with New, run it with Serve.
type Server struct {
	zone     zone
	upstream []string
	log      *slog.Logger
	udp      net.PacketConn
	tcp      net.Listener

	serving  atomic.Bool
	forwards chan struct{} // a slot per upstream query in flight
}

// New checks cfg and opens the server's UDP and TCP sockets, so that Addr is known and
// queries sent before Serve wait in the sockets' queues. Call Serve to answer them, or
// Close to release the sockets of a server that will not be served.
func New(cfg Config) (*Server, error) {
	if cfg.Catalog == nil {
		return nil, errors.New("dns: Config.Catalog is nil: the server needs the network's services")
	}
	if network := cfg.Catalog.Network(); !validLabel(network) {
		return nil, fmt.Errorf("dns: the catalog's network name %q is not a DNS label (1-63 letters, digits, '-' or '_')", network)
	}
	switch {
	case cfg.TTL == 0:
		cfg.TTL = DefaultTTL
	case cfg.TTL < time.Second || cfg.TTL%time.Second != 0 || cfg.TTL > math.MaxInt32*time.Second:
		return nil, fmt.Errorf("dns: Config.TTL %v is invalid: want whole seconds from 1s to %ds, or 0 for %v", cfg.TTL, math.MaxInt32, DefaultTTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for i, up := range cfg.Upstream {
		if err := checkHostPort(up, false); err != nil {
			return nil, fmt.Errorf("dns: Config.Upstream[%d] %q: %w", i, up, err)
		}
	}
	if err := checkHostPort(cfg.Addr, true); err != nil {
		return nil, fmt.Errorf("dns: Config.Addr %q: %w", cfg.Addr, err)
	}
	udp, tcp, err := listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	return &Server{
		zone:     zone{catalog: cfg.Catalog, ttl: uint32(cfg.TTL / time.Second)},
		upstream: append([]string(nil), cfg.Upstream...),
		log:      cfg.Logger,
		udp:      udp,
		tcp:      tcp,
		forwards: make(chan struct{}, maxForwards),
	}, nil
}

// checkHostPort checks that s is host:port with a numeric port (zero allowed only when
// zeroOK).
func checkHostPort(s string, zeroOK bool) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port, such as 127.0.0.1:53 or [::1]:53: %w", err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (n == 0 && !zeroOK) {
		lo := 1
		if zeroOK {
			lo = 0
		}
		return fmt.Errorf("port %q is not a number from %d to 65535", port, lo)
	}
	return nil
}

// listen opens UDP and TCP sockets on the same address. With port 0 the UDP socket
// picks the port and TCP takes the same one, retrying with a new port when TCP finds
// it taken.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	const attempts = 10
	for i := 0; ; i++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns: listen on udp %s: %w", addr, err)
		}
		tcpAddr := net.JoinHostPort(host, strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port))
		tcp, err := net.Listen("tcp", tcpAddr)
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if n, _ := strconv.Atoi(port); n != 0 || i == attempts-1 {
			return nil, nil, fmt.Errorf("dns: listen on tcp %s: %w", tcpAddr, err)
		}
	}
}

// Addr returns the address the server listens on (UDP and TCP), with the real port.
func (s *Server) Addr() string {
	return s.udp.LocalAddr().String()
}

// Close releases the sockets of a server that is not served. Serve closes them
// itself when it returns; Close during Serve makes Serve return with an error.
func (s *Server) Close() error {
	var errs []error
	for _, err := range []error{s.udp.Close(), s.tcp.Close()} {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Serve answers queries on UDP and TCP until ctx ends, then stops taking queries, waits
// for the ones in flight and closes the sockets. It returns nil when ctx ended, or the
// error that stopped a listener. A Server can be served once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("dns: Serve called twice")
	}
	return s.serve(ctx, s.udp, s.tcp, true)
}

// ServeOn answers queries on more sockets, udp and tcp (either may be nil), as Serve
// does on the server's own, until ctx ends; then it stops taking queries, waits for
// the ones in flight and closes the sockets. The node serves each container's network
// namespace this way, on sockets it opened there. It returns nil when ctx ended, or the
// error that stopped a socket (closing one is such an error).
func (s *Server) ServeOn(ctx context.Context, udp net.PacketConn, tcp net.Listener) error {
	return s.serve(ctx, udp, tcp, false)
}

// serve answers on udp and tcp until ctx ends; main says they are the server's own
// sockets, whose start is logged.
func (s *Server) serve(ctx context.Context, udp net.PacketConn, tcp net.Listener, main bool) error {
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) { s.serveDNS(ctx, w, req) })
	var servers []*dns.Server
	addr := ""
	if udp != nil {
		servers = append(servers, &dns.Server{PacketConn: udp, Handler: handler, UDPSize: readSize, MsgAcceptFunc: accept})
		addr = udp.LocalAddr().String()
	}
	if tcp != nil {
		servers = append(servers, &dns.Server{Listener: deadlineListener{tcp}, Handler: handler, MsgAcceptFunc: accept})
		addr = tcp.Addr().String()
	}
	if len(servers) == 0 {
		return errors.New("dns: no socket to serve on")
	}
	started := make(chan struct{}, len(servers))
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() { errc <- srv.ActivateAndServe() }()
	}
	running := len(servers)
	var err error
	// Wait until both have started (or one failed): a server shut down before it has
	// started would start afterwards and never stop.
	for n := 0; n < len(servers) && err == nil; {
		select {
		case <-started:
			n++
		case err = <-errc:
			running--
		}
	}
	if err == nil {
		if main {
			s.log.Info("dns: serving", "addr", addr, "zone", s.zone.origin())
		}
		select {
		case <-ctx.Done():
		case err = <-errc:
			running--
		}
	}
	for _, srv := range servers {
		// A server that failed before it started answers "not started": nothing to stop.
		_ = srv.ShutdownContext(context.Background())
	}
	for ; running > 0; running-- {
		if e := <-errc; err == nil {
			err = e
		}
	}
	// ActivateAndServe leaves a socket open when it fails before starting.
	if tcp != nil {
		tcp.Close()
	}
	if udp != nil {
		udp.Close()
	}
	if err != nil {
		return fmt.Errorf("dns: serve on %s: %w", addr, err)
	}
	return nil
}

// accept screens a query by its header before it is unpacked: the library's checks
// (responses dropped, several questions refused) and only QUERY served, since the
// server takes no NOTIFY or UPDATE.
func accept(h dns.Header) dns.MsgAcceptAction {
	action := dns.DefaultMsgAcceptFunc(h)
	if opcode := int(h.Bits>>11) & 0xF; action == dns.MsgAccept && opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	return action
}

// serveDNS answers one query. The library runs it in a goroutine of its own per UDP
// packet and per TCP connection, so a slow query never holds up another.
func (s *Server) serveDNS(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) {
	defer func() {
		// A bug in answering one query must not take the node down, as net/http does;
		// the client gets no answer and retries or times out.
		if p := recover(); p != nil {
			s.log.Error("dns: panic answering a query", "panic", p, "query", req.String(), "stack", string(debug.Stack()))
		}
	}()
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	reply := s.handle(ctx, req, udp)
	if reply == nil {
		return
	}
	if err := w.WriteMsg(reply); err != nil {
		s.log.Debug("dns: write reply", "client", w.RemoteAddr().String(), "err", err)
	}
}

// handle returns the reply to req, which came over UDP when udp is true, or nil when
// req deserves none (it is itself a response). It never fails: what it cannot answer
// it answers with an error code. The reply fits the client's buffer: over UDP 512
// bytes, or the size its EDNS record advertises up to ednsSize; cut replies have TC.
func (s *Server) handle(ctx context.Context, req *dns.Msg, udp bool) *dns.Msg {
	if req.Response {
		return nil // answering responses would let two servers bounce packets forever
	}
	reply := s.answer(ctx, req, udp)
	size := dns.MaxMsgSize
	if opt := req.IsEdns0(); opt != nil {
		if reply.IsEdns0() == nil {
			reply.SetEdns0(ednsSize, opt.Do())
		}
		if udp {
			size = max(dns.MinMsgSize, min(int(opt.UDPSize()), ednsSize))
		}
	} else if udp {
		size = dns.MinMsgSize
	}
	reply.Truncate(size)
	return reply
}

// answer returns the reply to the query req, before it is fitted to the transport.
func (s *Server) answer(ctx context.Context, req *dns.Msg, udp bool) *dns.Msg {
	reply := new(dns.Msg)
	reply.SetReply(req)
	reply.RecursionAvailable = len(s.upstream) > 0
	opt := req.IsEdns0()
	switch {
	case req.Opcode != dns.OpcodeQuery:
		reply.Rcode = dns.RcodeNotImplemented
		return reply
	case len(req.Question) != 1:
		reply.Rcode = dns.RcodeFormatError
		return reply
	case opt != nil && opt.Version() != 0:
		reply.Rcode = dns.RcodeBadVers // RFC 6891: we speak EDNS version 0 only
		return reply
	}
	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY,
		q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		// Only the Internet class, and no zone transfers: the zone is rebuilt from the
		// catalog on every query and has no copy to hand out.
		reply.Rcode = dns.RcodeRefused
	case inQnet(q.Name):
		s.zone.answer(reply, q)
	case len(s.upstream) == 0:
		reply.Rcode = dns.RcodeRefused
	default:
		if r := s.forward(ctx, req, udp); r != nil {
			return r
		}
		reply.Rcode = dns.RcodeServerFailure
	}
	return reply
}

// forward asks the upstreams in turn for req over the transport it came on (so a
// truncated upstream answer reaches the client with TC set and it retries over TCP).
// It returns the first answer, or nil when no upstream answered.
func (s *Server) forward(ctx context.Context, req *dns.Msg, udp bool) *dns.Msg {
	select {
	case s.forwards <- struct{}{}:
		defer func() { <-s.forwards }()
	default:
		s.log.Debug("dns: too many queries in flight to upstreams", "name", req.Question[0].Name)
		return nil
	}
	network := "tcp"
	if udp {
		network = "udp"
	}
	client := &dns.Client{Net: network, Timeout: forwardTimeout}
	for _, up := range s.upstream {
		r, err := exchangeUpstream(ctx, client, req, up)
		if err == nil {
			r.Id = req.Id
			return r
		}
		s.log.Debug("dns: upstream failed", "upstream", up, "name", req.Question[0].Name, "err", err)
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// exchangeUpstream sends req to addr and returns its answer. Unlike the library's
// ExchangeContext it gives up as soon as ctx ends, not only at its deadline, so a
// server that stops does not wait for upstreams.
func exchangeUpstream(ctx context.Context, client *dns.Client, req *dns.Msg, addr string) (*dns.Msg, error) {
	conn, err := client.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r, _, err := client.ExchangeWithConnContext(ctx, req, conn)
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return r, err
}

// deadlineListener hands out connections whose writes time out, which the library's
// TCP server does not do itself.
type deadlineListener struct{ net.Listener }

func (l deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return deadlineConn{c}, nil
}

// deadlineConn is a connection whose every write must finish within writeTimeout.
type deadlineConn struct{ net.Conn }

func (c deadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
