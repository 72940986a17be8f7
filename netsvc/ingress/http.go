package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// match finds the route of a request. The Host header wins: a host that names a
// routed service (SERVICE.NETWORK.qnet of this network, or any other host name whose
// first label is SERVICE) goes to it with its path untouched. Otherwise the first path
// segment may name the service: /SERVICE/rest goes to SERVICE as /rest. The Host wins
// because it is how a client that owns a name for the service (DNS to the nodes)
// reaches it, and such a service must be free to use any path, its own name included;
// the prefix is the fallback for clients that only have a node's address.
//
// It returns the route, the path prefix to strip ("" for host routing), and the names
// the request asked for, for the 404 of a request that matched nothing.
func (t *table) match(r *http.Request, network string) (rt *route, prefix, hostName, pathName string) {
	hostName = hostService(r.Host, network)
	if rt = t.http[hostName]; rt != nil {
		return rt, "", hostName, ""
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if rt = t.http[seg]; rt != nil && strings.HasPrefix(r.URL.Path, "/") {
		return rt, "/" + seg, hostName, seg
	}
	return nil, "", hostName, seg
}

// hostService is the service a Host header names, "" when it names none: an IP
// address, or a .qnet name that is not SERVICE.NETWORK.qnet of this network.
func hostService(host, network string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || strings.HasPrefix(host, "[") {
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	labels := strings.Split(host, ".")
	if labels[len(labels)-1] == "qnet" {
		if len(labels) != 3 || (network != "" && labels[1] != network) {
			return ""
		}
	}
	return labels[0]
}

// ServeHTTP routes a request to its service through the route's checks: rate limit,
// body size, schema.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !in.handled.enter() {
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "the ingress is shutting down"})
		return
	}
	defer in.handled.leave()

	rt, prefix, hostName, pathName := in.table.Load().match(r, in.cfg.Network)
	if rt == nil {
		in.notFound.Add(1)
		writeError(w, http.StatusNotFound, notFound(hostName, pathName))
		return
	}
	if rt.err != nil {
		// The reason (a schema error, say) is the operator's business: it is in the
		// node's log and in Stats, not in an answer to whoever asks.
		writeError(w, http.StatusServiceUnavailable, errorBody{
			Error: fmt.Sprintf("service %q is exposed but its ingress route is misconfigured", rt.Service), Service: rt.Service,
		})
		return
	}
	rt.pool.active.Add(1)
	defer rt.pool.active.Add(-1)
	if r.Method == http.MethodConnect {
		writeError(w, http.StatusMethodNotAllowed, errorBody{Error: "CONNECT is not served: the ingress is not a forward proxy", Service: rt.Service})
		return
	}
	if ok, wait := in.buckets.allow(rt.key, rt.RateLimit, clientAddr(r), in.now()); !ok {
		rt.ctr.limited.Add(1)
		secs := max(1, int64((wait+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeError(w, http.StatusTooManyRequests, errorBody{
			Error:   fmt.Sprintf("rate limit of service %q exceeded (%s per client); retry after %d s", rt.Service, rt.RateLimit, secs),
			Service: rt.Service,
		})
		return
	}
	if r.ContentLength > rt.maxBody {
		rt.ctr.tooLarge.Add(1)
		writeError(w, http.StatusRequestEntityTooLarge, tooLarge(rt))
		return
	}
	body := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, rt.maxBody)}
	r.Body = body
	if rt.schema != nil && hasBody(r.Method) {
		if status, eb, ok := in.checkBody(r, rt); !ok {
			if status == http.StatusRequestEntityTooLarge {
				rt.ctr.tooLarge.Add(1)
			} else {
				rt.ctr.schemaRejected.Add(1)
			}
			writeError(w, status, eb)
			return
		}
	}
	rt.ctr.accepted.Add(1)
	rt.pool.proxy(rt, body, in.log, in.srv.ErrorLog).ServeHTTP(w, outbound(r, prefix))
}

// hasBody reports whether a method's body is checked against a route's schema.
func hasBody(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// outbound is r as the service sees it: without the path prefix that routed it, which
// is told in X-Forwarded-Prefix instead.
func outbound(r *http.Request, prefix string) *http.Request {
	out := r.Clone(r.Context())
	out.Header.Del("X-Forwarded-Prefix") // only the ingress may say it
	if prefix == "" {
		return out
	}
	out.URL.Path = "/" + strings.TrimPrefix(strings.TrimPrefix(out.URL.Path, prefix), "/")
	if out.URL.RawPath != "" {
		out.URL.RawPath = "/" + strings.TrimPrefix(strings.TrimPrefix(out.URL.RawPath, prefix), "/")
	}
	out.Header.Set("X-Forwarded-Prefix", prefix)
	return out
}

// maxSchemaErrors bounds the failures an error response lists.
const maxSchemaErrors = 10

// checkBody reads the whole body of r, checks it against the route's schema, and on
// success puts it back for the proxy. On failure it returns the status and error
// response.
func (in *Ingress) checkBody(r *http.Request, rt *route) (int, errorBody, bool) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return http.StatusUnsupportedMediaType, errorBody{
			Error:   fmt.Sprintf("service %q takes JSON bodies for %s: Content-Type %q is not application/json or */*+json", rt.Service, r.Method, ct),
			Service: rt.Service,
		}, false
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return http.StatusRequestEntityTooLarge, tooLarge(rt), false
		}
		return http.StatusBadRequest, errorBody{Error: fmt.Sprintf("reading the request body: %v", err), Service: rt.Service}, false
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return http.StatusBadRequest, errorBody{Error: "the body is not valid JSON: " + jsonError(data, err), Service: rt.Service}, false
	}
	if err := rt.schema.Validate(doc); err != nil {
		eb := errorBody{Error: "the body does not match the schema of service " + strconv.Quote(rt.Service), Service: rt.Service}
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			eb.Details = leafErrors(ve, nil)
		}
		if len(eb.Details) > 0 {
			eb.Location = eb.Details[0].Location
			eb.Error += fmt.Sprintf(": at %s: %s", displayPointer(eb.Location), eb.Details[0].Message)
		}
		return http.StatusBadRequest, eb, false
	}
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
	return 0, errorBody{}, true
}

// leafErrors are the failures of a schema check that say what is wrong: the leaves of
// its tree of causes, where the inner nodes only say that a part ($ref, allOf, ...)
// failed.
func leafErrors(ve *jsonschema.ValidationError, errs []schemaError) []schemaError {
	if len(errs) >= maxSchemaErrors {
		return errs
	}
	if len(ve.Causes) == 0 {
		msg := ve.Error()
		if u := ve.BasicOutput(); u.Error != nil {
			msg = u.Error.String()
		}
		return append(errs, schemaError{Location: jsonPointer(ve.InstanceLocation), Message: msg})
	}
	for _, c := range ve.Causes {
		errs = leafErrors(c, errs)
	}
	return errs
}

// jsonPointer is the RFC 6901 pointer of a path in a document.
func jsonPointer(path []string) string {
	var b strings.Builder
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(p))
	}
	return b.String()
}

// displayPointer is a JSON pointer as an error message shows it: the whole document
// is "the top level".
func displayPointer(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

// jsonError describes a JSON syntax error with the line and column a person can find.
func jsonError(data []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var off int64 = -1
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if len(bytes.TrimSpace(data)) == 0 {
			return "the body is empty"
		}
		return "the body ends in the middle of a value"
	}
	if off < 0 || off > int64(len(data)) {
		return err.Error()
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("line %d, column %d (byte %d): %v", line, col, off, err)
}

// limitedBody remembers whether its reader hit the body limit, so that the proxy can
// tell a body that was too large from a backend that failed.
type limitedBody struct {
	io.ReadCloser
	exceeded bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if err != nil && errors.As(err, &mbe) {
		b.exceeded = true
	}
	return n, err
}

// errorBody is the JSON body of every response the ingress itself gives.
type errorBody struct {
	Error   string `json:"error"`
	Service string `json:"service,omitempty"`
	// Location is the JSON pointer, in the request body, of the first schema failure.
	Location string        `json:"location,omitempty"`
	Details  []schemaError `json:"details,omitempty"`
}

// schemaError is one failure of a schema check.
type schemaError struct {
	Location string `json:"location"`
	Message  string `json:"message"`
}

func notFound(hostName, pathName string) errorBody {
	switch {
	case hostName != "" && pathName != "":
		return errorBody{Error: fmt.Sprintf("no service named %q (from the Host header) or %q (from the path) is exposed on this ingress", hostName, pathName), Service: hostName}
	case hostName != "":
		return errorBody{Error: fmt.Sprintf("no service named %q (from the Host header) is exposed on this ingress", hostName), Service: hostName}
	case pathName != "":
		return errorBody{Error: fmt.Sprintf("no service named %q (from the path) is exposed on this ingress", pathName), Service: pathName}
	}
	return errorBody{Error: "the request names no service: use Host SERVICE.NETWORK.qnet or the path /SERVICE/"}
}

func tooLarge(rt *route) errorBody {
	return errorBody{Error: fmt.Sprintf("the body is larger than the %d bytes service %q takes", rt.maxBody, rt.Service), Service: rt.Service}
}

func writeError(w http.ResponseWriter, status int, b errorBody) {
	data, err := json.Marshal(b)
	if err != nil { // cannot happen: errorBody holds only strings
		data = []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// backendPool is an HTTP route's keep-alive pool of connections to its service,
// dialled through the Backend.
type backendPool struct {
	port      string
	transport *http.Transport
	// active counts the requests in the pool's handlers, so that a retired pool is
	// forgotten only when none is left.
	active atomic.Int64
}

func newBackendPool(b Backend, service, port string) *backendPool {
	return &backendPool{port: port, transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return b.DialService(ctx, service, port)
		},
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The proxy passes bodies as they are; compressing is the service's choice.
		DisableCompression: true,
	}}
}

// copyBuffers are the buffers the reverse proxies copy response bodies through: one
// pool for every route, instead of 32 KiB allocated for each request.
var copyBuffers = &bufferPool{sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}

// bufferPool is a sync.Pool of byte slices, as httputil.BufferPool wants them.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(s []byte) { b.p.Put(&s) }

// proxy returns the reverse proxy of one request: its error handler needs to know
// whether that request's body was too large.
func (p *backendPool) proxy(rt *route, body *limitedBody, log *slog.Logger, errLog *stdlog.Logger) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		ErrorLog: errLog,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = rt.Service // one pool per route, so the host only labels it
			pr.Out.Host = pr.In.Host     // the service sees the name it was called by
			// Rewrite mode dropped the client's own X-Forwarded-* headers: the ingress
			// is the edge, so only what it saw of the client is passed on.
			pr.SetXForwarded()
		},
		Transport: p.transport,
		// FlushInterval 0: a response of known length goes out in one write, while one
		// of unknown length (chunked: events, logs) or text/event-stream is flushed after
		// every write, so streams still pass as they come.
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if body.exceeded {
				rt.ctr.tooLarge.Add(1)
				writeError(w, http.StatusRequestEntityTooLarge, tooLarge(rt))
				return
			}
			if r.Context().Err() != nil {
				return // the client left, or Run is cutting requests: no one to answer
			}
			// The cause names nodes and addresses inside the network: it goes to the
			// log, not to the client.
			rt.ctr.backendErrors.Add(1)
			log.Warn("ingress: backend failed", "route", rt.String(), "err", err)
			writeError(w, http.StatusBadGateway, errorBody{
				Error: fmt.Sprintf("service %q did not answer", rt.Service), Service: rt.Service,
			})
		},
	}
}
