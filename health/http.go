package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// maxBodySnippet bounds how much of a failing response's body goes into the error,
// so a depot cannot flood status reports through its health endpoint.
const maxBodySnippet = 256

// httpCheck passes when GET url answers 2xx or 3xx. Redirects are not followed: a 3xx is
// itself a pass, and following it could lead the node's agent to another host.
type httpCheck struct {
	url     string
	timeout time.Duration
	client  *http.Client
}

func newHTTPCheck(host string, port int, path string, timeout time.Duration) (*httpCheck, error) {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q must start with /", path)
	}
	if i := strings.IndexFunc(path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return nil, fmt.Errorf("path %q contains a space or control character at byte %d", path, i)
	}
	hostport := net.JoinHostPort(host, strconv.Itoa(port))
	u, err := url.Parse("http://" + hostport + path)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	if u.Host != hostport {
		return nil, fmt.Errorf("path %q changes the host of the check", path)
	}
	// A transport of its own per check, with keep-alives off: every attempt opens and
	// closes its own connection, so a depot that is restarted, or a check that is
	// dropped, leaves no idle connection behind in a shared pool. Proxies from the
	// environment are ignored: the depot is on this node.
	dialer := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		ResponseHeaderTimeout:  timeout,
	}
	return &httpCheck{
		url:     u.String(),
		timeout: timeout,
		client: &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

// Run implements [Check].
func (c *httpCheck) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.url, err)
	}
	req.Header.Set("User-Agent", "qnet-health/1")
	req.Header.Set("Accept", "*/*")
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return fmt.Errorf("GET %s: no answer within %v: %w", c.url, c.timeout, err)
		}
		return fmt.Errorf("GET %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodySnippet))
	snippet := strings.TrimSpace(strings.ToValidUTF8(string(body), "?"))
	if snippet != "" {
		return fmt.Errorf("GET %s: status %s: %q", c.url, resp.Status, snippet)
	}
	return fmt.Errorf("GET %s: status %s", c.url, resp.Status)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// tcpCheck passes when a TCP connection to addr opens; the connection is closed at once.
type tcpCheck struct {
	addr    string
	timeout time.Duration
}

func newTCPCheck(host string, port int, timeout time.Duration) *tcpCheck {
	return &tcpCheck{addr: net.JoinHostPort(host, strconv.Itoa(port)), timeout: timeout}
}

// Run implements [Check].
func (c *tcpCheck) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return fmt.Errorf("connect %s: no answer within %v: %w", c.addr, c.timeout, err)
		}
		return fmt.Errorf("connect %s: %w", c.addr, err)
	}
	// The connection opened, which is all this check asks; an error on close says
	// nothing about the depot.
	_ = conn.Close()
	return nil
}
