package ingress

import (
	"container/list"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientOf is the key a client is limited by: its IP address, never its port, so that
// opening more connections buys nothing. An IPv6 client is its /64, the smallest block
// a site is handed: one host can use every address of its /64, so keying by address
// would give it 2^64 buckets.
func clientOf(addr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		// Not an IP transport (a pipe in tests, a unix socket): every such client
		// shares one bucket, which errs on the side of limiting.
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// clientOfConn is clientOf for a connection's remote address.
func clientOfConn(c net.Conn) netip.Prefix {
	if a := c.RemoteAddr(); a != nil {
		return clientOf(a.String())
	}
	return netip.Prefix{}
}

// bucketKey is one client's bucket on one route.
type bucketKey struct {
	route  string
	client netip.Prefix
}

type bucket struct {
	key  bucketKey
	lim  *rate.Limiter
	rate Rate
}

// buckets holds the token buckets of the clients of every route. Its memory is
// bounded: it tracks at most max buckets, evicting the least recently used, and sweep
// drops every bucket that has refilled, since a full bucket is the same as a new one.
// Eviction under pressure can hand an old client a fresh burst; the cap is sized so
// that only a flood of distinct clients reaches it.
type buckets struct {
	mu  sync.Mutex
	max int
	m   map[bucketKey]*list.Element
	lru list.List // front: most recently used; values are *bucket
}

func newBuckets(max int) *buckets {
	return &buckets{max: max, m: map[bucketKey]*list.Element{}}
}

// allow takes a token from the client's bucket on route at now. When there is none, it
// reports how long until there is one.
func (b *buckets) allow(route string, r Rate, client netip.Prefix, now time.Time) (bool, time.Duration) {
	if r.IsZero() {
		return true, 0
	}
	k := bucketKey{route, client}
	b.mu.Lock()
	defer b.mu.Unlock()
	var bk *bucket
	if e, ok := b.m[k]; ok {
		b.lru.MoveToFront(e)
		bk = e.Value.(*bucket)
		if bk.rate != r { // the route's limit changed: keep the tokens, change the rest
			bk.lim.SetLimitAt(now, r.Limit())
			bk.lim.SetBurstAt(now, r.Burst)
			bk.rate = r
		}
	} else {
		for b.lru.Len() >= b.max {
			old := b.lru.Back()
			b.lru.Remove(old)
			delete(b.m, old.Value.(*bucket).key)
		}
		bk = &bucket{key: k, lim: rate.NewLimiter(r.Limit(), r.Burst), rate: r}
		b.m[k] = b.lru.PushFront(bk)
	}
	if bk.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - bk.lim.TokensAt(now)
	wait := time.Duration(math.Ceil(missing / float64(bk.lim.Limit()) * float64(time.Second)))
	return false, max(wait, 0)
}

// sweep drops the buckets that are full at now, and those of routes that are gone
// (live reports whether a route key still exists); it returns how many remain.
func (b *buckets) sweep(now time.Time, live func(route string) bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	for e := b.lru.Back(); e != nil; {
		prev := e.Prev()
		bk := e.Value.(*bucket)
		if !live(bk.key.route) || bk.lim.TokensAt(now) >= float64(bk.lim.Burst()) {
			b.lru.Remove(e)
			delete(b.m, bk.key)
		}
		e = prev
	}
	return b.lru.Len()
}

func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lru.Len()
}

// connCounts counts each client's open connections, HTTP and TCP together, so that no
// client can take all of a node's sockets. Entries live only while a client has
// connections, so its memory is bounded by the number of open connections.
type connCounts struct {
	mu  sync.Mutex
	max int
	m   map[netip.Prefix]int
}

func newConnCounts(max int) *connCounts {
	return &connCounts{max: max, m: map[netip.Prefix]int{}}
}

// acquire counts a new connection of client, unless the client is at its maximum.
func (c *connCounts) acquire(client netip.Prefix) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[client] >= c.max {
		return false
	}
	c.m[client]++
	return true
}

func (c *connCounts) release(client netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[client] <= 1 {
		delete(c.m, client)
		return
	}
	c.m[client]--
}

// countedConn releases its client's count once, at its first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can, which the
// reverse proxy's protocol upgrades rely on.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
