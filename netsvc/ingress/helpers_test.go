package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testBackend is a Backend that dials real listeners by service and port, and counts
// its dials.
type testBackend struct {
	mu    sync.Mutex
	addrs map[string]string // "service/port" -> host:port
	dials map[string]int
}

func newTestBackend() *testBackend {
	return &testBackend{addrs: map[string]string{}, dials: map[string]int{}}
}

func (b *testBackend) set(service, port, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs[service+"/"+port] = addr
}

func (b *testBackend) dialCount(service string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dials[service]
}

func (b *testBackend) DialService(ctx context.Context, service, port string) (net.Conn, error) {
	b.mu.Lock()
	addr, ok := b.addrs[service+"/"+port]
	b.dials[service]++
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no ready replica of %s/%s at node n-secret-7", service, port)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// echoed is what the echo service saw of a request.
type echoed struct {
	Service string
	Method  string
	Path    string
	RawPath string
	Query   string
	Host    string
	Prefix  string
	XFF     string
	Body    string
}

// echoService is an HTTP service that answers with what it saw, and counts requests.
type echoService struct {
	name string
	n    atomic.Int64
	srv  *httptest.Server
}

func startEcho(t testing.TB, b *testBackend, service, port string) *echoService {
	t.Helper()
	e := &echoService{name: service}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.n.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(echoed{
			Service: service, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery,
			Host: r.Host, Prefix: r.Header.Get("X-Forwarded-Prefix"), XFF: r.Header.Get("X-Forwarded-For"), Body: string(body),
		})
	}))
	t.Cleanup(e.srv.Close)
	b.set(service, port, e.srv.Listener.Addr().String())
	return e
}

// fakeClock is the clock of rate limits in tests: time moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startIngress runs an ingress for the test and stops it at cleanup, checking that Run
// returned nil and left no goroutine behind.
func startIngress(t testing.TB, cfg Config, clock *fakeClock) *Ingress {
	t.Helper()
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.TCPHost == "" {
		cfg.TCPHost = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.ShutdownGrace = cmpOr(cfg.ShutdownGrace, time.Second)
	in, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if clock != nil {
		in.now = clock.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return within 10 s of its context ending")
		}
		waitFor(t, "the ingress's goroutines to end", func() bool { return ingressGoroutines() == "" })
	})
	return in
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// ingressGoroutines returns the stacks of goroutines running code of the ingress
// (not of its tests), "" when there are none.
func ingressGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "netsvc/ingress.(*") || strings.Contains(g, "netsvc/ingress.newBackendPool") {
			found = append(found, g)
		}
	}
	return strings.Join(found, "\n\n")
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		<-time.After(time.Millisecond) // a poll interval, not a wait for the event
	}
}

// clientFrom is an HTTP client whose connections come from the loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
}

// needLoopbackAlias skips the test when ip cannot be a source address here; on Linux
// all of 127/8 is the loopback.
func needLoopbackAlias(t *testing.T, ip string) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		if errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Skipf("loopback address %s is not available on this system: %v", ip, err)
		}
		t.Fatal(err)
	}
	ln.Close()
}

// get sends a request to the ingress and returns the status, body and response.
func do(t *testing.T, c *http.Client, in *Ingress, method, host, path, ctype, body string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+in.Addr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if body == "" {
		req.Body = nil
		req.ContentLength = 0
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data), resp
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

func routeStats(t *testing.T, in *Ingress, service string, tcp bool) RouteStats {
	t.Helper()
	for _, rs := range in.Stats().Routes {
		if rs.Route.Service == service && rs.Route.TCP == tcp {
			return rs
		}
	}
	t.Fatalf("no stats for route %s (tcp %v)", service, tcp)
	return RouteStats{}
}
