// Package hello is the example service that `qnet dev` runs: a small HTTP server that
// says which depot, service and node answered, with the health endpoints QNet probes.
// It is a library so the qnet binary can run it (`qnet example-hello`) on any node
// without a second executable.
//
// It is configured by its environment, as the agent gives it:
//
//	PORT               port to serve on, on 127.0.0.1 (required)
//	QNET_DEPOT_ID      shown in answers; "unknown" when absent
//	QNET_SERVICE       shown in answers; "unknown" when absent
//	QNET_NODE          shown in answers; "unknown" when absent
//	HELLO_WARMUP       how long /ready answers 503 after start, e.g. "500ms" (default 0)
//	HELLO_ALLOW_CRASH  "1" lets GET /crash exit the process with code 3, for tests of restarts
//	HELLO_UDP_ECHO     the name of a udp port of the manifest, e.g. "echo": the example
//	                   then also answers each datagram to 127.0.0.1:$QNET_PORT_<NAME>
//	                   with the datagram itself (a UDP workload for tests of the proxy)
package hello

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CrashExitCode is the exit code of the process after GET /crash.
const CrashExitCode = 3

// shutdownGrace bounds how long in-flight requests may take to finish once Run is
// asked to stop.
const shutdownGrace = 5 * time.Second

// config is what the environment says.
type config struct {
	port       int
	depotID    string
	service    string
	node       string
	warmup     time.Duration
	allowCrash bool
	udpEcho    int // 0: no UDP echo
}

// configFromEnv reads the configuration through getenv; the error names the variable
// at fault and what would be valid.
func configFromEnv(getenv func(string) string) (config, error) {
	var c config
	p := strings.TrimSpace(getenv("PORT"))
	if p == "" {
		return c, errors.New("PORT is not set; set it to the port to serve on (1-65535)")
	}
	n, err := parsePort("PORT", p)
	if err != nil {
		return c, err
	}
	c.port = n
	if name := strings.TrimSpace(getenv("HELLO_UDP_ECHO")); name != "" {
		v := "QNET_PORT_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		p := strings.TrimSpace(getenv(v))
		if p == "" {
			return c, fmt.Errorf("HELLO_UDP_ECHO=%q names a port, but %s is not set; name a port of the manifest's spec.ports", name, v)
		}
		if c.udpEcho, err = parsePort(v, p); err != nil {
			return c, err
		}
	}
	if w := strings.TrimSpace(getenv("HELLO_WARMUP")); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < 0 {
			return c, fmt.Errorf("HELLO_WARMUP=%q is not a valid duration; want e.g. \"500ms\" or \"2s\"", w)
		}
		c.warmup = d
	}
	orUnknown := func(k string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return "unknown"
	}
	c.depotID = orUnknown("QNET_DEPOT_ID")
	c.service = orUnknown("QNET_SERVICE")
	c.node = orUnknown("QNET_NODE")
	c.allowCrash = getenv("HELLO_ALLOW_CRASH") == "1"
	return c, nil
}

func parsePort(name, p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s=%q is not a valid port; want a number in 1-65535", name, p)
	}
	return n, nil
}

// Run serves the example service on 127.0.0.1:$PORT until ctx is done, then shuts down
// gracefully and returns nil. It logs one line per request to stdout. It returns an
// error when the environment is invalid or the port cannot be bound.
func Run(ctx context.Context, stdout io.Writer) error {
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("hello: listen on %s: %w", addr, err)
	}
	if cfg.udpEcho != 0 {
		uaddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.udpEcho))
		pc, err := lc.ListenPacket(ctx, "udp", uaddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("hello: listen on %s/udp: %w", uaddr, err)
		}
		ectx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			echo(ectx, pc)
		}()
		defer func() {
			cancel()
			<-done
		}()
	}
	return serve(ctx, ln, cfg, stdout, time.Now, os.Exit)
}

// echo answers each datagram on pc with itself until ctx is done; it closes pc.
func echo(ctx context.Context, pc net.PacketConn) {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer pc.Close()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue // an ICMP refusal of an earlier answer: that one was lost
		}
		if err != nil {
			return // closed
		}
		pc.WriteTo(buf[:n], from)
	}
}

// serve answers on ln until ctx is done; it closes ln. now and exit are the clock and
// os.Exit, given so tests can replace them.
func serve(ctx context.Context, ln net.Listener, cfg config, stdout io.Writer, now func() time.Time, exit func(int)) error {
	log := slog.New(slog.NewTextHandler(stdout, nil))
	h := &handler{cfg: cfg, log: log, now: now, exit: exit, readyAt: now().Add(cfg.warmup)}
	srv := &http.Server{
		Handler:           h.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String(), "depot", cfg.depotID, "service", cfg.service,
		"node", cfg.node, "warmup", cfg.warmup)

	select {
	case err := <-serveErr:
		return fmt.Errorf("hello: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-serveErr // Serve returns ErrServerClosed as soon as Shutdown starts
	if err != nil {
		return fmt.Errorf("hello: shut down: %w", err)
	}
	log.Info("stopped")
	return nil
}

type handler struct {
	cfg     config
	log     *slog.Logger
	now     func() time.Time
	exit    func(int)
	readyAt time.Time
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.hello)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /ready", h.ready)
	mux.HandleFunc("GET /crash", h.crash)
	return h.logged(mux)
}

func (h *handler) hello(w http.ResponseWriter, r *http.Request) {
	text(w, http.StatusOK, fmt.Sprintf("hello from %s (service %s, node %s)\n", h.cfg.depotID, h.cfg.service, h.cfg.node))
}

func (h *handler) ready(w http.ResponseWriter, r *http.Request) {
	if left := h.readyAt.Sub(h.now()); left > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((left+time.Second-1)/time.Second)))
		text(w, http.StatusServiceUnavailable, fmt.Sprintf("warming up, %v left\n", left.Round(time.Millisecond)))
		return
	}
	text(w, http.StatusOK, "ready\n")
}

func (h *handler) crash(w http.ResponseWriter, r *http.Request) {
	if !h.cfg.allowCrash {
		text(w, http.StatusForbidden, "crash is disabled; set HELLO_ALLOW_CRASH=1 to allow it\n")
		return
	}
	// The request log line would come after the handler, which never returns.
	h.log.Warn("crash requested", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"exit_code", CrashExitCode)
	h.exit(CrashExitCode)
}

// logged logs one line per request once it is answered.
func (h *handler) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		h.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"bytes", sw.bytes, "duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// statusWriter remembers the status and size of a response for the request log.
type statusWriter struct {
	http.ResponseWriter
	status      int
	bytes       int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
