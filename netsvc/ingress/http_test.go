package ingress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRouting(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	startEcho(t, b, "api", "http")
	in := startIngress(t, Config{Network: "testnet", Backend: b, Routes: NewRouteTable(
		Route{Service: "web", Port: "http"},
		Route{Service: "api", Port: "http"},
	)}, nil)
	c := clientFrom("127.0.0.1")

	cases := []struct {
		name, host, path           string
		service, wantPath, wantRaw string
		wantQuery, wantPrefix      string
	}{
		{"full name", "web.testnet.qnet", "/x", "web", "/x", "", "", ""},
		{"bare name", "web", "/a/b", "web", "/a/b", "", "", ""},
		{"case, port and root dot", "WEB.TestNet.QNET.:8080", "/", "web", "/", "", "", ""},
		{"first label of another name", "web.example.com", "/x", "web", "/x", "", "", ""},
		{"path prefix", "127.0.0.1", "/api/v1/items?q=1", "api", "/v1/items", "", "q=1", "/api"},
		{"path prefix alone", "127.0.0.1", "/api", "api", "/", "", "", "/api"},
		{"escaped path under a prefix", "127.0.0.1", "/api/a%2Fb", "api", "/a/b", "/a%2Fb", "", "/api"},
		{"host wins over path", "web", "/api/x", "web", "/api/x", "", "", ""},
		{"foreign network falls back to the path", "web.other.qnet", "/api/x", "api", "/x", "", "", "/api"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+in.Addr().String()+tc.path, nil)
			req.Host = tc.host
			req.Header.Set("X-Forwarded-Prefix", "/spoofed")
			req.Header.Set("X-Forwarded-For", "6.6.6.6")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			e := decode[echoed](t, string(data))
			if e.Service != tc.service || e.Path != tc.wantPath || e.RawPath != tc.wantRaw || e.Query != tc.wantQuery || e.Prefix != tc.wantPrefix {
				t.Errorf("service saw %+v; want service %s path %q raw %q query %q prefix %q",
					e, tc.service, tc.wantPath, tc.wantRaw, tc.wantQuery, tc.wantPrefix)
			}
			if e.Host != tc.host {
				t.Errorf("service saw Host %q, want the client's %q", e.Host, tc.host)
			}
			if e.XFF != "127.0.0.1" {
				t.Errorf("service saw X-Forwarded-For %q, want only the real client 127.0.0.1", e.XFF)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	in := startIngress(t, Config{Network: "testnet", Backend: b, Routes: NewRouteTable(Route{Service: "web", Port: "http"})}, nil)
	c := clientFrom("127.0.0.1")
	cases := []struct{ host, path, service, says string }{
		{"shop.testnet.qnet", "/", "shop", `"shop" (from the Host header)`},
		{"127.0.0.1", "/shop/cart", "shop", `"shop" (from the path)`},
		{"localhost", "/shop/", "localhost", `"localhost" (from the Host header) or "shop" (from the path)`},
		{"[::1]", "/", "", "names no service"},
	}
	for _, tc := range cases {
		status, body, resp := do(t, c, in, "GET", tc.host, tc.path, "", "")
		if status != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("Host %s %s: status %d, type %q; want 404 JSON", tc.host, tc.path, status, resp.Header.Get("Content-Type"))
		}
		eb := decode[errorBody](t, body)
		if eb.Service != tc.service || !strings.Contains(eb.Error, tc.says) {
			t.Errorf("Host %s %s: body %+v; want service %q and an error saying %s", tc.host, tc.path, eb, tc.service, tc.says)
		}
	}
	if got := in.Stats().NotFound; got != uint64(len(cases)) {
		t.Errorf("Stats().NotFound = %d, want %d", got, len(cases))
	}
}

const orderSchema = `{
  "type": "object",
  "required": ["item", "qty"],
  "properties": {
    "item": {"type": "string"},
    "qty": {"type": "integer", "minimum": 1},
    "tags": {"type": "array", "items": {"type": "string"}}
  },
  "additionalProperties": false
}`

func TestSchema(t *testing.T) {
	b := newTestBackend()
	orders := startEcho(t, b, "orders", "http")
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(
		Route{Service: "orders", Port: "http", Schema: []byte(orderSchema), MaxBodyBytes: 1024},
	)}, nil)
	c := clientFrom("127.0.0.1")

	good := `{"item":"tea","qty":2,"tags":["green"]}`
	for _, method := range []string{"POST", "PUT", "PATCH"} {
		status, body, _ := do(t, c, in, method, "orders", "/o", "application/json; charset=utf-8", good)
		if status != 200 || decode[echoed](t, body).Body != good {
			t.Fatalf("%s of a valid order: %d %s; want 200 and the body passed intact", method, status, body)
		}
	}
	status, _, _ := do(t, c, in, "POST", "orders", "/o", "application/vnd.order+json", good)
	if status != 200 {
		t.Errorf("POST as application/vnd.order+json: %d, want 200", status)
	}
	accepted := orders.n.Load()

	bad := []struct {
		name, ctype, body string
		status            int
		location, says    string
	}{
		{"below minimum", "application/json", `{"item":"tea","qty":0}`, 400, "/qty", "minimum"},
		{"wrong type deep", "application/json", `{"item":"tea","qty":1,"tags":["a",7]}`, 400, "/tags/1", "want string"},
		{"missing field", "application/json", `{"qty":1}`, 400, "", "missing property 'item'"},
		{"extra field", "application/json", `{"item":"a","qty":1,"x":1}`, 400, "", "'x' not allowed"},
		{"not JSON", "application/json", "{\"item\":\n \"tea\",}", 400, "", "line 2, column"},
		{"trailing data", "application/json", `{"item":"a","qty":1} {}`, 400, "", "not valid JSON"},
		{"empty", "application/json", "", 400, "", "the body is empty"},
		{"not a JSON type", "text/plain", good, 415, "", `"text/plain" is not application/json`},
		{"no type", "", good, 415, "", "Content-Type"},
		{"too large", "application/json", `{"item":"` + strings.Repeat("a", 2000) + `","qty":1}`, 413, "", "larger than the 1024 bytes"},
	}
	for _, tc := range bad {
		status, body, _ := do(t, c, in, "POST", "orders", "/o", tc.ctype, tc.body)
		eb := decode[errorBody](t, body)
		if status != tc.status || eb.Location != tc.location || !strings.Contains(eb.Error, tc.says) || eb.Service != "orders" {
			t.Errorf("%s: %d %+v; want %d at %q saying %q", tc.name, status, eb, tc.status, tc.location, tc.says)
		}
		if tc.location != "" && (len(eb.Details) == 0 || eb.Details[0].Location != tc.location) {
			t.Errorf("%s: details %+v; want the first at %s", tc.name, eb.Details, tc.location)
		}
	}
	if n := orders.n.Load(); n != accepted {
		t.Errorf("the service got %d rejected bodies; want none", n-accepted)
	}
	// A GET carries no checked body.
	if status, _, _ := do(t, c, in, "GET", "orders", "/o", "", ""); status != 200 {
		t.Errorf("GET: %d, want 200", status)
	}
	rs := routeStats(t, in, "orders", false)
	if rs.SchemaRejected != 9 || rs.TooLarge != 1 || rs.Accepted != 5 {
		t.Errorf("stats %+v; want 9 schema rejections, 1 too large, 5 accepted", rs)
	}
}

func TestBadSchemaFailsClosed(t *testing.T) {
	b := newTestBackend()
	svc := startEcho(t, b, "orders", "http")
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(
		Route{Service: "orders", Port: "http", Schema: []byte(`{"$ref": "file:///etc/passwd"}`)},
	)}, nil)
	status, body, _ := do(t, clientFrom("127.0.0.1"), in, "POST", "orders", "/", "application/json", `{}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "misconfigured") || strings.Contains(body, "passwd") {
		t.Errorf("a route whose schema does not compile answered %d %s; want 503 that does not leak the reason", status, body)
	}
	if svc.n.Load() != 0 {
		t.Error("the request reached the service unchecked")
	}
	if rs := routeStats(t, in, "orders", false); !strings.Contains(rs.Err, "references outside the schema document are not allowed") {
		t.Errorf("stats Err = %q; want the reason", rs.Err)
	}
}

func TestBodyTooLarge(t *testing.T) {
	b := newTestBackend()
	svc := startEcho(t, b, "up", "http")
	in := startIngress(t, Config{Backend: b, MaxBodyBytes: 4096, Routes: NewRouteTable(
		Route{Service: "up", Port: "http", MaxBodyBytes: 1024},
	)}, nil)
	c := clientFrom("127.0.0.1")
	if status, _, _ := do(t, c, in, "POST", "up", "/", "application/octet-stream", strings.Repeat("a", 1024)); status != 200 {
		t.Fatalf("a body at the limit: %d, want 200", status)
	}
	// Declared too large: refused before reading.
	status, body, _ := do(t, c, in, "POST", "up", "/", "application/octet-stream", strings.Repeat("a", 2048))
	if status != 413 || !strings.Contains(body, "1024 bytes") {
		t.Errorf("2048 bytes with Content-Length: %d %s; want 413 naming the limit", status, body)
	}
	// Chunked, so only counting finds it, in the middle of proxying.
	req, _ := http.NewRequest("POST", "http://"+in.Addr().String()+"/", io.MultiReader(strings.NewReader(strings.Repeat("b", 3000))))
	req.Host = "up"
	req.ContentLength = -1
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("3000 chunked bytes: %d %s; want 413", resp.StatusCode, data)
	}
	rs := routeStats(t, in, "up", false)
	if rs.TooLarge != 2 || rs.BackendErrors != 0 {
		t.Errorf("stats %+v; want 2 too large and no backend errors", rs)
	}
	if svc.n.Load() > 2 {
		t.Errorf("the service answered %d requests; at most the good one and the cut chunked one may reach it", svc.n.Load())
	}
}

func TestHeaderTooLarge(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(Route{Service: "web", Port: "http"})}, nil)
	send := func(size int) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+in.Addr().String()+"/", nil)
		req.Host = "web"
		req.Header.Set("X-Big", strings.Repeat("h", size))
		resp, err := clientFrom("127.0.0.1").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send(12 << 10); got != 200 {
		t.Errorf("12 KiB of headers: %d, want 200 under the default 16 KiB", got)
	}
	if got := send(40 << 10); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("40 KiB of headers: %d, want 431", got)
	}
}

func TestSlowLorisIsCut(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	const timeout = time.Second
	in := startIngress(t, Config{Backend: b, ReadHeaderTimeout: timeout, Routes: NewRouteTable(Route{Service: "web", Port: "http"})}, nil)

	// Each loris drips a header, a byte at a time, that would take far longer than the
	// timeout to finish; it records when the server cut it.
	const lorises = 10
	header := "GET / HTTP/1.1\r\nHost: web\r\nX-Slow: " + strings.Repeat("s", 4000) + "\r\n\r\n"
	type result struct {
		sent    int
		elapsed time.Duration
		cutAt   time.Time
		reply   string
	}
	started := make(chan struct{}, lorises)
	results := make(chan result, lorises)
	for range lorises {
		go func() {
			start := time.Now() // before the server can start its clock
			conn, err := net.Dial("tcp", in.Addr().String())
			if err != nil {
				results <- result{reply: err.Error()}
				return
			}
			defer conn.Close()
			closed := make(chan string, 1)
			go func() { // the server's answer, if any, then its close
				data, _ := io.ReadAll(conn)
				closed <- string(data)
			}()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			sent := 0
			for {
				if _, err := conn.Write([]byte{header[sent]}); err == nil {
					sent++
					if sent == 1 {
						started <- struct{}{}
					}
				}
				select {
				case reply := <-closed:
					results <- result{sent: sent, elapsed: time.Since(start), cutAt: time.Now(), reply: reply}
					return
				case <-tick.C:
				}
			}
		}()
	}
	for range lorises {
		<-started
	}
	// While the lorises hold their connections, others are served.
	c := clientFrom("127.0.0.1")
	for i := range 20 {
		if status, _, _ := do(t, c, in, "GET", "web", fmt.Sprintf("/%d", i), "", ""); status != 200 {
			t.Fatalf("a normal request during the slow-loris attack got %d", status)
		}
	}
	servedAt := time.Now()
	for range lorises {
		r := <-results
		if r.elapsed < timeout || r.elapsed > timeout+5*time.Second {
			t.Errorf("a slow loris was cut after %v (%d bytes sent, reply %q); want about the %v header timeout", r.elapsed, r.sent, r.reply, timeout)
		}
		if r.sent >= len(header) {
			t.Errorf("a slow loris finished its header; the test cannot tell anything")
		}
		if !r.cutAt.After(servedAt) {
			t.Errorf("a slow loris was cut at %v, before the normal clients were served at %v", r.cutAt, servedAt)
		}
	}
}

func TestHTTPRateLimit(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	clock := newFakeClock()
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(
		Route{Service: "web", Port: "http", RateLimit: Rate{Count: 1, Per: time.Minute, Burst: 2}},
	)}, clock)
	c := clientFrom("127.0.0.1")
	for i := range 2 {
		if status, _, _ := do(t, c, in, "GET", "web", "/", "", ""); status != 200 {
			t.Fatalf("request %d within the burst: %d", i, status)
		}
	}
	status, body, resp := do(t, c, in, "GET", "web", "/", "", "")
	if status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "60" || !strings.Contains(body, "1/m burst 2") {
		t.Errorf("over the burst: %d, Retry-After %q, %s; want 429, 60 and the limit", status, resp.Header.Get("Retry-After"), body)
	}
	clock.Advance(30 * time.Second)
	if _, _, resp := do(t, c, in, "GET", "web", "/", "", ""); resp.Header.Get("Retry-After") != "30" {
		t.Errorf("half a period later: Retry-After %q, want 30", resp.Header.Get("Retry-After"))
	}
	clock.Advance(30 * time.Second)
	if status, _, _ := do(t, c, in, "GET", "web", "/", "", ""); status != 200 {
		t.Errorf("a period later: %d, want 200", status)
	}
	rs := routeStats(t, in, "web", false)
	if rs.Accepted != 3 || rs.Limited != 2 {
		t.Errorf("stats %+v; want 3 accepted, 2 limited", rs)
	}
}

func TestBackendError(t *testing.T) {
	b := newTestBackend() // knows no service: every dial fails
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(Route{Service: "web", Port: "http"})}, nil)
	status, body, _ := do(t, clientFrom("127.0.0.1"), in, "GET", "web", "/", "", "")
	if status != http.StatusBadGateway || !strings.Contains(body, `service \"web\" did not answer`) || strings.Contains(body, "n-secret-7") {
		t.Errorf("backend down: %d %s; want 502 that names the service and not the node", status, body)
	}
	if rs := routeStats(t, in, "web", false); rs.BackendErrors != 1 {
		t.Errorf("stats %+v; want 1 backend error", rs)
	}
}

func TestKeepAlivePool(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	in := startIngress(t, Config{Backend: b, Routes: NewRouteTable(Route{Service: "web", Port: "http"})}, nil)
	c := clientFrom("127.0.0.1")
	for range 20 {
		if status, _, _ := do(t, c, in, "GET", "web", "/", "", ""); status != 200 {
			t.Fatal(status)
		}
	}
	if n := b.dialCount("web"); n != 1 {
		t.Errorf("20 sequential requests dialled the backend %d times; want 1 kept-alive connection", n)
	}
}

func TestMaxConnsPerClient(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	in := startIngress(t, Config{Backend: b, MaxConnsPerClient: 2, Routes: NewRouteTable(Route{Service: "web", Port: "http"})}, nil)
	request := func(conn net.Conn) (int, error) {
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: web\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var open []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", in.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if status, err := request(conn); err != nil || status != 200 {
			t.Fatalf("a connection within the limit: %d, %v", status, err)
		}
		open = append(open, conn)
	}
	third, err := net.Dial("tcp", in.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if _, err := request(third); err == nil {
		t.Fatal("a third connection of the same client was served; want it closed")
	}
	if got := in.Stats().RefusedConns; got != 1 {
		t.Errorf("RefusedConns = %d, want 1", got)
	}
	open[0].Close()
	waitFor(t, "a connection slot to free", func() bool {
		conn, err := net.Dial("tcp", in.Addr().String())
		if err != nil {
			return false
		}
		defer conn.Close()
		status, err := request(conn)
		return err == nil && status == 200
	})
}

func TestRouteChanges(t *testing.T) {
	b := newTestBackend()
	startEcho(t, b, "web", "http")
	startEcho(t, b, "api", "http")
	table := NewRouteTable(Route{Service: "web", Port: "http"})
	in := startIngress(t, Config{Backend: b, Routes: table}, nil)
	c := clientFrom("127.0.0.1")
	if status, _, _ := do(t, c, in, "GET", "api", "/", "", ""); status != 404 {
		t.Fatalf("api before it is exposed: %d, want 404", status)
	}
	if status, _, _ := do(t, c, in, "GET", "web", "/", "", ""); status != 200 {
		t.Fatalf("web: %d", status)
	}
	table.Set([]Route{{Service: "web", Port: "http"}, {Service: "api", Port: "http"}})
	waitFor(t, "api to be routed", func() bool {
		status, _, _ := do(t, c, in, "GET", "api", "/", "", "")
		return status == 200
	})
	if rs := routeStats(t, in, "web", false); rs.Accepted != 1 {
		t.Errorf("web's counters after the change: %+v; want them kept (1 accepted)", rs)
	}
	table.Set([]Route{{Service: "api", Port: "http"}})
	waitFor(t, "web to be gone", func() bool {
		status, _, _ := do(t, c, in, "GET", "web", "/", "", "")
		return status == 404
	})
}

func TestConfigValidate(t *testing.T) {
	ok := Config{HTTPAddr: ":0", Routes: NewRouteTable(), Backend: newTestBackend()}
	cases := []struct {
		mod  func(*Config)
		says string
	}{
		{func(c *Config) { c.HTTPAddr = "" }, "HTTPAddr is required"},
		{func(c *Config) { c.Routes = nil }, "Routes is required"},
		{func(c *Config) { c.Backend = nil }, "Backend is required"},
		{func(c *Config) { c.MaxBodyBytes = -1 }, "MaxBodyBytes -1 is negative"},
		{func(c *Config) { c.Network = "Bad_Net" }, `Network "Bad_Net" is not valid`},
	}
	for _, tc := range cases {
		c := ok
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Validate() = %v; want an error saying %q", err, tc.says)
		}
	}
	if _, err := New(Config{HTTPAddr: "256.0.0.1:0", Routes: NewRouteTable(), Backend: newTestBackend()}); err == nil || !strings.Contains(err.Error(), "HTTPAddr") {
		t.Errorf("New with a bad address: %v; want an error naming HTTPAddr", err)
	}
}

func TestRouteValidate(t *testing.T) {
	cases := []struct {
		r    Route
		says string
	}{
		{Route{Service: "Web", Port: "http"}, `service "Web" is not valid`},
		{Route{Service: "web", Port: ""}, `port name "" is not valid`},
		{Route{Service: "web", Port: "http", ListenPort: 80}, "only valid for a TCP route"},
		{Route{Service: "db", Port: "pg", TCP: true, ListenPort: 70000}, "listen port 70000 is out of range"},
		{Route{Service: "db", Port: "pg", TCP: true, Schema: []byte(`{}`)}, "takes no schema"},
		{Route{Service: "web", Port: "http", Schema: []byte(`{`)}, "schema: not a JSON document"},
		{Route{Service: "web", Port: "http", Schema: []byte(`{"type":"nope"}`)}, "schema:"},
		{Route{Service: "web", Port: "http", RateLimit: Rate{Count: 5, Per: time.Second}}, "burst 0 is out of range"},
	}
	for _, tc := range cases {
		if err := tc.r.Validate(); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v.Validate() = %v; want an error saying %q", tc.r, err, tc.says)
		}
	}
	if err := (Route{Service: "web", Port: "http", Schema: []byte(orderSchema), RateLimit: Rate{5, time.Second, 5}}).Validate(); err != nil {
		t.Errorf("a good route: %v", err)
	}
}

func TestHostService(t *testing.T) {
	cases := map[string]string{
		"web.testnet.qnet":      "web",
		"web.testnet.qnet.:443": "web",
		"web.other.qnet":        "",
		"a.web.testnet.qnet":    "",
		"web":                   "web",
		"web.example.com":       "web",
		"10.0.0.1":              "",
		"10.0.0.1:80":           "",
		"[::1]:80":              "",
		"[::1]":                 "",
		"":                      "",
	}
	for host, want := range cases {
		if got := hostService(host, "testnet"); got != want {
			t.Errorf("hostService(%q) = %q, want %q", host, got, want)
		}
	}
}

// TestStreamedResponse: a response of unknown length (a stream of events) reaches the
// client as the service writes it, not when it ends; one of known length arrives whole.
func TestStreamedResponse(t *testing.T) {
	b := newTestBackend()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/whole" {
			w.Write([]byte("all at once"))
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "first event")
		w.(http.Flusher).Flush()
		<-release // the rest only once the client has seen the first event
		fmt.Fprintln(w, "second event")
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	b.set("events", "http", srv.Listener.Addr().String())
	in := startIngress(t, Config{Network: "testnet", Backend: b, Routes: NewRouteTable(Route{Service: "events", Port: "http"})}, nil)
	c := clientFrom("127.0.0.1")

	req, _ := http.NewRequest("GET", "http://"+in.Addr().String()+"/stream", nil)
	req.Host = "events"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "first event\n" {
		t.Fatalf("first line of the stream: %q, %v", line, err)
	}
	close(release)
	if line, err := r.ReadString('\n'); err != nil || line != "second event\n" {
		t.Fatalf("second line of the stream: %q, %v", line, err)
	}

	status, body, _ := do(t, c, in, "GET", "events", "/whole", "", "")
	if status != 200 || body != "all at once" {
		t.Errorf("a response of known length: %d %q", status, body)
	}
}
