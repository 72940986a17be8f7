package ingress

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// panicCatcher is a log handler that remembers whether anything logged a panic:
// net/http recovers a handler's panic and only logs it.
type panicCatcher struct{ seen *atomic.Value }

func (p panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p panicCatcher) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.seen.Store(r.Message)
	}
	return nil
}
func (p panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p panicCatcher) WithGroup(string) slog.Handler      { return p }

// FuzzRequest feeds raw bytes to the HTTP ingress, as a client on the network can, and
// checks that the server never panics and answers only with HTTP responses.
func FuzzRequest(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: web\r\n\r\n",
		"GET /web/x?y=1 HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /o HTTP/1.1\r\nHost: orders.testnet.qnet\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"item\":\"a\",\"qty\":1}  ",
		"POST /o HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"qty\r\n3\r\n\":0}\r\n0\r\n\r\n",
		"PUT /orders/ HTTP/1.1\r\nHost: 1.2.3.4\r\nContent-Type: application/merge-patch+json\r\nContent-Length: 9\r\n\r\n[1,2,{}]]",
		"PATCH / HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json; charset=\"\r\nContent-Length: 2\r\n\r\n{}",
		"POST / HTTP/1.1\r\nHost: orders\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{",
		"POST / HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"CONNECT web:80 HTTP/1.1\r\nHost: web:80\r\n\r\n",
		"GET http://web.testnet.qnet/abs HTTP/1.1\r\nHost: other\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: web\r\n\r\n",
		"GET /lim/ HTTP/1.1\r\nHost: [::1]\r\n\r\nGET /lim/ HTTP/1.1\r\nHost: lim\r\n\r\n",
		"GET /%2e%2e/web/%zz HTTP/1.1\r\nHost: \r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: web\r\nX: " + strings.Repeat("a", 30000) + "\r\n\r\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	b := newTestBackend()
	for _, s := range []string{"web", "orders", "lim"} {
		startEcho(f, b, s, "http")
	}
	var seen atomic.Value
	in := startIngress(f, Config{
		Network: "testnet", Backend: b, Logger: slog.New(panicCatcher{&seen}),
		MaxHeaderBytes: 4096, ReadHeaderTimeout: 2 * time.Second,
		Routes: NewRouteTable(
			Route{Service: "web", Port: "http"},
			Route{Service: "orders", Port: "http", Schema: []byte(orderSchema), MaxBodyBytes: 4096},
			Route{Service: "lim", Port: "http", RateLimit: Rate{Count: 1, Per: time.Hour, Burst: 1}},
		),
	}, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := net.Dial("tcp", in.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
		out, err := io.ReadAll(c)
		if err != nil && !isReset(err) {
			t.Fatalf("reading the answer: %v", err)
		}
		if len(out) > 0 && !bytes.HasPrefix(out, []byte("HTTP/1.")) {
			t.Fatalf("the ingress answered with something other than HTTP: %.200q", out)
		}
		if msg := seen.Load(); msg != nil {
			t.Fatalf("the server logged a panic: %v", msg)
		}
	})
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// FuzzSchema compiles schema documents as a manifest could carry them and checks
// bodies against those that compile: neither may panic, and a failure always names a
// location.
func FuzzSchema(f *testing.F) {
	f.Add([]byte(orderSchema), []byte(`{"item":"a","qty":0}`))
	f.Add([]byte(`{"$ref":"#"}`), []byte(`1`))
	f.Add([]byte(`{"$defs":{"a":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`), []byte(`{}`))
	f.Add([]byte(`{"$ref":"https://example.com/s.json"}`), []byte(`{}`))
	f.Add([]byte(`{"$schema":"http://json-schema.org/draft-04/schema#","type":"array","items":[{"type":"string"}]}`), []byte(`[1]`))
	f.Add([]byte(`{"pattern":"(a+)+$","anyOf":[{"minLength":2},{"const":"x"}]}`), []byte(`"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"`))
	f.Add([]byte(`true`), []byte(`null`))
	f.Add([]byte(`{"type":"nope"}`), []byte(``))
	f.Fuzz(func(t *testing.T, schema, body []byte) {
		r := Route{Service: "s", Port: "p", Schema: schema}
		sch, err := r.compileSchema()
		if err != nil || sch == nil {
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			if msg := jsonError(body, err); msg == "" {
				t.Fatalf("a JSON error with no message for %q", body)
			}
			return
		}
		if err := sch.Validate(doc); err != nil {
			ve, ok := err.(*jsonschema.ValidationError)
			if !ok {
				t.Fatalf("Validate returned %T: %v", err, err)
			}
			if errs := leafErrors(ve, nil); len(errs) == 0 || len(errs) > maxSchemaErrors {
				t.Fatalf("a failed check gave %d details: %v", len(errs), errs)
			}
		}
	})
}
