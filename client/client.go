// Package client is the Go client of QNet's HTTP API; the qnet CLI is built on it. It
// pins the node's TLS key from the context, sends the operator's token with every
// request, and signs transactions with the operator's key.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/ledger"
)

// Client talks to one node's API.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// stream is for long-lived streams (logs, events): no overall timeout.
	stream *http.Client

	keyPath string
	keyOnce sync.Once
	key     *identity.Key
	keyErr  error
}

// New returns a client for a context.
func New(c *Context) (*Client, error) {
	u, err := url.Parse(c.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("context server %q: want https://host:port", c.Server)
	}
	tr := &http.Transport{
		TLSClientConfig:     PinnedTLS(c.ServerKey),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
	}
	return &Client{
		base: u, token: c.Token, keyPath: c.OperatorKey,
		http:   &http.Client{Transport: tr, Timeout: 2 * time.Minute},
		stream: &http.Client{Transport: tr},
	}, nil
}

// PinnedTLS trusts exactly the server whose public key hashes to pin (hex SHA-256 of
// the DER SubjectPublicKeyInfo), with TLS 1.3 and hybrid post-quantum key exchange
// preferred.
func PinnedTLS(pin string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519MLKEM768, tls.X25519},
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("server sent no certificate")
			}
			cert, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if got := KeyPin(cert); got != pin {
				return fmt.Errorf("server key %s is not the pinned %s: this is not the node of your context (or its key changed)", short(got), short(pin))
			}
			return nil
		},
	}
}

// KeyPin is the pin of a certificate's key.
func KeyPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// APIError is an error answered by the API.
type APIError struct {
	Status  int
	Message string
	Details []string
}

func (e *APIError) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	return e.Message + "\n  " + strings.Join(e.Details, "\n  ")
}

// IsNotFound reports whether err is an API "not found".
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + api.Version + path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends a request and decodes a JSON answer into out (nil to discard). Answers with
// codes in okCodes besides 200 are decoded too.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any, okCodes ...int) error {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach qnet API at %s: %w", c.base.Host, err)
	}
	defer resp.Body.Close()
	ok := resp.StatusCode == http.StatusOK
	for _, code := range okCodes {
		ok = ok || resp.StatusCode == code
	}
	if !ok {
		return decodeError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e api.Error
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return &APIError{Status: resp.StatusCode, Message: e.Error, Details: e.Details}
	}
	return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))}
}

// stream opens a streaming GET; the caller closes the body.
func (c *Client) open(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach qnet API at %s: %w", c.base.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// Status describes the node.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, http.MethodGet, "/status", nil, nil, &s)
}

// Audit has the node audit the network's transfer receipts.
func (c *Client) Audit(ctx context.Context) (*api.AuditReport, error) {
	var r api.AuditReport
	return &r, c.do(ctx, http.MethodGet, "/audit", nil, nil, &r)
}

// Services lists services.
func (c *Client) Services(ctx context.Context) ([]api.Service, error) {
	var out []api.Service
	return out, c.do(ctx, http.MethodGet, "/services", nil, nil, &out)
}

// Service describes one service.
func (c *Client) Service(ctx context.Context, name string) (*api.ServiceDetail, error) {
	var out api.ServiceDetail
	return &out, c.do(ctx, http.MethodGet, "/services/"+url.PathEscape(name), nil, nil, &out)
}

// Depots lists depots, of one service when service is not "".
func (c *Client) Depots(ctx context.Context, service string) ([]api.Depot, error) {
	q := url.Values{}
	if service != "" {
		q.Set("service", service)
	}
	var out []api.Depot
	return out, c.do(ctx, http.MethodGet, "/depots", q, nil, &out)
}

// Depot describes one depot: where it is placed and its last reported status.
func (c *Client) Depot(ctx context.Context, id string) (*api.Depot, error) {
	var out api.Depot
	return &out, c.do(ctx, http.MethodGet, "/depots/"+url.PathEscape(id), nil, nil, &out)
}

// Nodes lists nodes.
func (c *Client) Nodes(ctx context.Context) ([]api.Node, error) {
	var out []api.Node
	return out, c.do(ctx, http.MethodGet, "/nodes", nil, nil, &out)
}

// Blocks lists block summaries: limit blocks from height from (nil: the latest).
func (c *Client) Blocks(ctx context.Context, from *uint64, limit int) ([]api.BlockSummary, error) {
	q := url.Values{}
	if from != nil {
		q.Set("from", fmt.Sprint(*from))
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out []api.BlockSummary
	return out, c.do(ctx, http.MethodGet, "/ledger/blocks", q, nil, &out)
}

// Block returns a whole block.
func (c *Client) Block(ctx context.Context, height uint64) (*ledger.Block, error) {
	var b ledger.Block
	return &b, c.do(ctx, http.MethodGet, fmt.Sprintf("/ledger/blocks/%d", height), nil, nil, &b)
}

// VerifyLedger asks the node to re-check its chain from genesis.
func (c *Client) VerifyLedger(ctx context.Context) (*api.VerifyReport, error) {
	var r api.VerifyReport
	return &r, c.do(ctx, http.MethodPost, "/ledger/verify", nil, nil, &r)
}

// LogOptions select log lines.
type LogOptions struct {
	Follow bool
	// Tail is how many of the last lines to show first; -1 for all.
	Tail int
	// Stream is stdout, stderr, or "" for both.
	Stream string
	// Depot limits a service's logs to one depot.
	Depot string
}

// Logs copies a service's logs (or one depot's) to w until they end or, with Follow,
// until ctx ends.
func (c *Client) Logs(ctx context.Context, service string, o LogOptions, w io.Writer) error {
	q := url.Values{}
	q.Set("follow", fmt.Sprint(o.Follow))
	q.Set("tail", fmt.Sprint(o.Tail))
	if o.Stream != "" {
		q.Set("stream", o.Stream)
	}
	if o.Depot != "" {
		q.Set("depot", o.Depot)
	}
	body, err := c.open(ctx, "/services/"+url.PathEscape(service)+"/logs", q)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(w, body)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Events calls fn with each event of the network (or of one service) as it happens: the
// recent ones first, then, with follow, new ones until ctx ends.
func (c *Client) Events(ctx context.Context, service string, follow bool, fn func(Event) error) error {
	q := url.Values{}
	q.Set("follow", fmt.Sprint(follow))
	if service != "" {
		q.Set("service", service)
	}
	body, err := c.open(ctx, "/events", q)
	if err != nil {
		return err
	}
	defer body.Close()
	dec := json.NewDecoder(body)
	for {
		var e Event
		if err := dec.Decode(&e); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("event stream: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
