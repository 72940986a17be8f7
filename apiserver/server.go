// Package apiserver serves QNet's HTTP API (see package api) from an agent: reads come
// from the node's replica of the state, writes are signed transactions checked at the
// door and handed to the ordering layer, and logs and events stream as they happen.
// Every request must carry an operator's token; there is no anonymous access.
package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/ledger"
	"qnet.dev/qnet/orderer"
	"qnet.dev/qnet/state"
)

// MaxRequestBody bounds a request body.
const MaxRequestBody = 8 << 20

// Backend is what the server needs from its node.
type Backend interface {
	// Store is the node's replica of the state.
	Store() *state.Store
	// Submit checks transactions at the door and orders them; it returns per-transaction
	// results, or an error when none could be handled.
	Submit(ctx context.Context, txs []*ledger.Tx) ([]orderer.Result, error)
	// Status describes the node.
	Status() api.Status
	// LogPaths returns the log files of a depot that runs on this node.
	LogPaths(depotID string) (stdout, stderr string, ok bool)
	// RemoteLogs streams the logs of depots on another node into w.
	RemoteLogs(ctx context.Context, nodeID string, req LogRequest, w io.Writer) error
	// Alive reports whether a node is up.
	Alive(nodeID string) bool
	// Leader is the ID of the ordering leader, "" when unknown.
	Leader() string
	// RotateKeys replaces the node's keys through the ledger.
	RotateKeys(ctx context.Context) (api.RotateResult, error)
	// Depots is the node's depot store.
	Depots() *depot.Store
	// Audit cross-checks the transfer receipts of every node against each other and
	// the ledger.
	Audit(ctx context.Context) (api.AuditReport, error)
}

// Server is the HTTP API.
type Server struct {
	b      Backend
	log    *slog.Logger
	events *EventLog
	mux    *http.ServeMux
}

// New returns the API server of a node. It subscribes to the node's events at once, so
// the event log holds everything from its start.
func New(b Backend, log *slog.Logger) *Server {
	s := &Server{b: b, log: log.With("part", "api"), mux: http.NewServeMux()}
	s.events = NewEventLog(b.Store(), 2000)
	s.routes()
	return s
}

// Close stops the server's event subscription.
func (s *Server) Close() { s.events.Close() }

func (s *Server) routes() {
	h := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		s.mux.Handle(pattern, s.auth(errorHandler(s.log, f)))
	}
	h("GET /v1/status", s.status)
	h("POST /v1/txs", s.submit)
	h("GET /v1/txs/{id}", s.tx)
	h("GET /v1/services", s.services)
	h("GET /v1/services/{name}", s.service)
	h("GET /v1/services/{name}/logs", s.serviceLogs)
	h("GET /v1/depots", s.depots)
	h("GET /v1/depots/{id}", s.depot)
	h("GET /v1/depots/{id}/logs", s.depotLogs)
	h("GET /v1/nodes", s.nodes)
	h("GET /v1/events", s.eventStream)
	h("GET /v1/ledger/blocks", s.blocks)
	h("GET /v1/ledger/blocks/{height}", s.block)
	h("POST /v1/ledger/verify", s.verify)
	h("GET /v1/tokens", s.tokens)
	s.imageRoutes(h)
	h("POST /v1/node/rotate-keys", s.rotateKeys)
	h("GET /v1/audit", s.audit)
	s.secretRoutes(h)
	s.mux.Handle("/", s.auth(errorHandler(s.log, s.noRoute)))
}

// noRoute answers what no route takes: 405 with Allow when the path is an endpoint
// that takes other methods, 404 otherwise, both as JSON like every other error (the
// mux's own answers would be plain text).
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return httpError{http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: method not allowed (use %s)", r.Method, r.URL.Path, strings.Join(allow, " or ")), nil}
	}
	return httpError{http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (the API lives under /%s/)", r.Method, r.URL.Path, api.Version), nil}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// TokenHash is how tokens are kept: hex SHA-256.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// auth admits only requests that carry the token of an operator the ledger knows.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		// The scheme is case-insensitive (RFC 9110 11.1); the token is not.
		scheme, token, _ := strings.Cut(authz, " ")
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qnet"`)
			writeJSON(w, http.StatusUnauthorized, api.Error{Error: "missing credential: send the operator token as \"Authorization: Bearer <token>\" (qnet uses the token of your context file)"})
			return
		}
		ops, err := s.b.Store().Operators()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, api.Error{Error: "read operators: " + err.Error()})
			return
		}
		got := []byte(TokenHash(token))
		for _, op := range ops {
			if subtle.ConstantTimeCompare(got, []byte(op.TokenHash)) == 1 {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), operatorKey{}, op.Name)))
				return
			}
		}
		s.log.Warn("refused request with a wrong credential", "remote", r.RemoteAddr, "path", r.URL.Path)
		writeJSON(w, http.StatusForbidden, api.Error{Error: "wrong credential: the token is not one of this network's operators"})
	})
}

type operatorKey struct{}

// httpError is an error with the status to answer it with.
type httpError struct {
	code    int
	msg     string
	details []string
}

func (e httpError) Error() string { return e.msg }

func errorHandler(log *slog.Logger, f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := f(w, r)
		if err == nil {
			return
		}
		var he httpError
		switch {
		case errors.As(err, &he):
		case errors.Is(err, state.ErrNotFound):
			he = httpError{http.StatusNotFound, err.Error(), nil}
		case errors.Is(err, context.Canceled):
			return
		default:
			log.Error("request failed", "path", r.URL.Path, "err", err)
			he = httpError{http.StatusInternalServerError, err.Error(), nil}
		}
		writeJSON(w, he.code, api.Error{Error: he.msg, Details: he.details})
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func badRequest(format string, args ...any) error {
	return httpError{http.StatusBadRequest, fmt.Sprintf(format, args...), nil}
}

func notFound(format string, args ...any) error {
	return httpError{http.StatusNotFound, fmt.Sprintf(format, args...), nil}
}

// audit answers an audit of the network's transfer receipts.
func (s *Server) audit(w http.ResponseWriter, r *http.Request) error {
	rep, err := s.b.Audit(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.b.Status())
	return nil
}

// submit takes signed transactions. Each is checked at the door; the response has one
// result per transaction. The status is 200 when all took effect, 422 when some were
// committed but failed or were refused, 400 when the request itself is bad.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	var req api.SubmitRequest
	body := http.MaxBytesReader(w, r.Body, MaxRequestBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	var tooBig *http.MaxBytesError
	err := dec.Decode(&req)
	if err == nil {
		// One document only: anything after it means the body is not what the sender
		// thinks it is.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
			if errors.As(terr, &tooBig) {
				err = terr
			}
		}
	}
	switch {
	case errors.As(err, &tooBig):
		return httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes: send fewer transactions at a time", MaxRequestBody), nil}
	case err != nil:
		return badRequest("request body is not a transaction list ({\"txs\": [signed transactions]}): %v", err)
	}
	if len(req.Txs) == 0 {
		return badRequest("no transactions given")
	}
	if len(req.Txs) > ledger.MaxBlockTxs {
		return badRequest("%d transactions in one request; at most %d", len(req.Txs), ledger.MaxBlockTxs)
	}
	for i, t := range req.Txs {
		if t == nil {
			return badRequest("transaction %d is null", i)
		}
	}
	results, err := s.b.Submit(r.Context(), req.Txs)
	if err != nil {
		return httpError{http.StatusServiceUnavailable, err.Error(), nil}
	}
	resp := api.SubmitResponse{Results: make([]api.TxResult, len(results))}
	code := http.StatusOK
	for i, res := range results {
		resp.Results[i] = api.TxResult{ID: res.ID.String(), Height: res.Height}
		if res.Err != nil {
			resp.Results[i].Error = res.Err.Error()
			code = http.StatusUnprocessableEntity
		}
	}
	writeJSON(w, code, resp)
	return nil
}

func (s *Server) tx(w http.ResponseWriter, r *http.Request) error {
	id, err := ledger.ParseHash(r.PathValue("id"))
	if err != nil {
		return badRequest("transaction id: %v", err)
	}
	rec, ok, err := s.b.Store().Tx(id)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("transaction %s not found", id.Short())
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

// flushWriter flushes after every write so streamed output reaches the client at once.
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if f.f != nil {
		f.f.Flush()
	}
	return n, err
}

// newFlushWriter returns a flushWriter and flushes at once, so the client has the
// status and headers even while nothing is there to stream yet.
func newFlushWriter(w http.ResponseWriter) flushWriter {
	f, _ := w.(http.Flusher)
	if f != nil {
		f.Flush()
	}
	return flushWriter{w: w, f: f}
}

// boolParam parses a boolean query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	switch v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, badRequest("query parameter %s=%q: want true or false", name, v)
}

func durationSince(t time.Time) time.Duration { return time.Since(t).Round(time.Second) }

func (s *Server) tokens(w http.ResponseWriter, r *http.Request) error {
	toks, err := s.b.Store().Tokens()
	if err != nil {
		return err
	}
	out := make([]api.Token, 0, len(toks))
	for _, t := range toks {
		out = append(out, api.Token{ID: t.ID, Expires: t.Expires, UsesLeft: t.UsesLeft, CreatedBy: t.CreatedBy})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	res, err := s.b.RotateKeys(r.Context())
	if err != nil {
		return httpError{http.StatusUnprocessableEntity, "rotate keys: " + err.Error(), nil}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
