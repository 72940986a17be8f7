package ingress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestFlood floods one route from 127.0.0.2 at ten times its limit for two seconds of
// the limiter's clock, while well-behaved clients from 127.0.0.3-6 use it at a fifth of
// their limit. The flood must be held to its allowance and the others served. The
// clock is the test's, advanced a step at a time once every request of the step is
// answered, so the outcome does not hang on how fast the machine is.
func TestFlood(t *testing.T) {
	const flooder = "127.0.0.2"
	good := []string{"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}
	for _, ip := range append([]string{flooder}, good...) {
		needLoopbackAlias(t, ip)
	}
	b := newTestBackend()
	svc := startEcho(t, b, "api", "http")
	clock := newFakeClock()
	limit := Rate{Count: 50, Per: time.Second, Burst: 50}
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(Route{Service: "api", Port: "http", RateLimit: limit})}, clock)

	const (
		step     = 20 * time.Millisecond
		steps    = 100 // 2 s
		perStep  = 10  // 500/s: ten times the limit
		goodEach = 5   // steps between two requests of a good client: 10/s
	)
	type tally struct {
		ok, limited, other int
		badRetry           string
	}
	send := func(c *http.Client, n int, tl *tally) {
		for range n {
			req, _ := http.NewRequest("GET", "http://"+in.Addr().String()+"/", nil)
			req.Host = "api.testnet.qnet"
			resp, err := c.Do(req)
			if err != nil {
				tl.other++
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				tl.ok++
			case http.StatusTooManyRequests:
				tl.limited++
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
					tl.badRetry = resp.Header.Get("Retry-After")
				}
			default:
				tl.other++
			}
		}
	}

	floodC := clientFrom(flooder)
	goodC := make([]*http.Client, len(good))
	for i, ip := range good {
		goodC[i] = clientFrom(ip)
	}
	var flood tally
	goods := make([]tally, len(good))
	start := time.Now()
	for s := range steps {
		var wg sync.WaitGroup
		wg.Go(func() { send(floodC, perStep, &flood) })
		if s%goodEach == 0 {
			for i := range good {
				wg.Go(func() { send(goodC[i], 1, &goods[i]) })
			}
		}
		wg.Wait()
		clock.Advance(step)
	}
	t.Logf("flood: %+v; good: %+v; in %v of real time", flood, goods, time.Since(start))

	// The flood gets its burst and the refill over 2 s, and not one request more.
	sent := steps * perStep
	allowance := limit.Burst + int(float64(limit.Limit())*steps*step.Seconds())
	if flood.ok > allowance || flood.ok < allowance-limit.Burst/10 {
		t.Errorf("the flooder got %d of %d through; want about its allowance of %d", flood.ok, sent, allowance)
	}
	if flood.limited != sent-flood.ok || flood.other != 0 || flood.badRetry != "" {
		t.Errorf("the flooder's other answers: %+v; want every one a 429 with a Retry-After", flood)
	}
	var okCount, total int
	for i, g := range goods {
		okCount += g.ok
		total += g.ok + g.limited + g.other
		if g.ok+g.limited+g.other != steps/goodEach {
			t.Errorf("good client %s sent %d requests, want %d", good[i], g.ok+g.limited+g.other, steps/goodEach)
		}
	}
	if okCount*100 < total*99 {
		t.Errorf("well-behaved clients got %d of %d requests through; want at least 99%%", okCount, total)
	}
	rs := routeStats(t, in, "api", false)
	if rs.Limited != uint64(flood.limited) || rs.Accepted != uint64(flood.ok+okCount) {
		t.Errorf("stats %+v; want %d limited and %d accepted", rs, flood.limited, flood.ok+okCount)
	}
	if svc.n.Load() != int64(flood.ok+okCount) {
		t.Errorf("the service saw %d requests; want only the %d accepted", svc.n.Load(), flood.ok+okCount)
	}
	if got := in.Stats().TrackedClients; got != 1+len(good) {
		t.Errorf("TrackedClients = %d, want one bucket per client (%d)", got, 1+len(good))
	}
}

func TestBucketsBounded(t *testing.T) {
	b := newBuckets(3)
	now := time.Unix(0, 0)
	r := Rate{Count: 1, Per: time.Second, Burst: 1}
	client := func(i int) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/32", i)) }
	for i := range 5 {
		if ok, _ := b.allow("http/web", r, client(i), now); !ok {
			t.Fatalf("client %d's first request was limited", i)
		}
	}
	if b.len() != 3 {
		t.Fatalf("tracking %d buckets, want the cap of 3", b.len())
	}
	// Clients 2, 3 and 4 are tracked and empty; 0 and 1 were evicted, so come back fresh.
	if ok, _ := b.allow("http/web", r, client(4), now); ok {
		t.Error("a tracked client's empty bucket allowed a request")
	}
	if ok, _ := b.allow("http/web", r, client(0), now); !ok {
		t.Error("an evicted client did not come back with a fresh bucket")
	}
	// Buckets that refilled are dropped; so are those of routes that went.
	b.allow("http/api", r, client(9), now)
	if n := b.sweep(now.Add(500*time.Millisecond), func(string) bool { return true }); n != 3 {
		t.Errorf("a sweep before any refill left %d buckets, want 3", n)
	}
	if n := b.sweep(now.Add(time.Second), func(route string) bool { return route == "http/web" }); n != 0 {
		t.Errorf("a sweep after a full refill left %d buckets, want 0", n)
	}
}

func TestBucketsRateChange(t *testing.T) {
	b := newBuckets(10)
	now := time.Unix(0, 0)
	c := netip.MustParsePrefix("10.0.0.1/32")
	slow := Rate{Count: 1, Per: time.Hour, Burst: 1}
	b.allow("http/web", slow, c, now)
	if ok, wait := b.allow("http/web", slow, c, now); ok || wait != time.Hour {
		t.Errorf("over 1/h: %v, wait %v; want limited for an hour", ok, wait)
	}
	// The new limit holds from when the bucket first sees it: tokens refill at the new
	// rate from then on.
	fast := Rate{Count: 10, Per: time.Second, Burst: 10}
	if ok, wait := b.allow("http/web", fast, c, now.Add(200*time.Millisecond)); ok || wait > 100*time.Millisecond {
		t.Errorf("at the change: %v, wait %v; want limited for at most a tenth of a second", ok, wait)
	}
	if ok, _ := b.allow("http/web", fast, c, now.Add(300*time.Millisecond)); !ok {
		t.Error("after the route's limit rose, the client was still held to the old one")
	}
}

func TestClientOf(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1:5000":                   "192.0.2.1/32",
		"[::ffff:192.0.2.1]:5000":          "192.0.2.1/32",
		"[2001:db8:1:2:3:4:5:6]:80":        "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff:4:5:6%eth0]:8": "2001:db8:1:2::/64",
		"pipe":                             "invalid Prefix",
	}
	for in, want := range cases {
		if got := clientOf(in).String(); got != want {
			t.Errorf("clientOf(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestRunSweeps checks that Run itself drops the buckets of clients that went quiet,
// and forgets the pools of routes that went.
func TestRunSweeps(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	startEcho(t, b, "api", "http")
	clock := newFakeClock()
	table := NewRouteTable(
		Route{Service: "web", Port: "http", RateLimit: Rate{Count: 1, Per: time.Second, Burst: 1}},
		Route{Service: "api", Port: "http"},
	)
	cfg := Config{HTTPAddr: "127.0.0.1:0", Backend: b, Routes: table, Logger: slog.New(slog.DiscardHandler)}
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in.now = clock.Now
	in.sweepEvery = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	c := clientFrom("127.0.0.1")
	do(t, c, in, "GET", "web", "/", "", "")
	do(t, c, in, "GET", "api", "/", "", "")
	if got := in.Stats().TrackedClients; got != 1 {
		t.Fatalf("TrackedClients = %d, want 1", got)
	}
	clock.Advance(time.Second) // the bucket is full again: the same as a new one
	waitFor(t, "Run's sweep to drop the refilled bucket", func() bool { return in.Stats().TrackedClients == 0 })

	limited := Route{Service: "web", Port: "http", RateLimit: Rate{Count: 1, Per: time.Second, Burst: 1}}
	table.Set([]Route{limited})
	waitFor(t, "api to be gone", func() bool {
		status, _, _ := do(t, c, in, "GET", "api", "/", "", "")
		return status == 404
	})
	// A bucket made after api's pool retired, then dropped, proves a sweep ran since;
	// a sweep forgets idle retired pools before it drops buckets.
	do(t, c, in, "GET", "web", "/", "", "")
	clock.Advance(time.Second)
	waitFor(t, "another sweep", func() bool { return in.Stats().TrackedClients == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil // for the deferred stop
	if len(in.retired) != 0 {
		t.Errorf("%d retired pools left; want the sweep to forget api's idle one", len(in.retired))
	}
}
