package hello

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	good, err := configFromEnv(envOf(map[string]string{
		"PORT": "8080", "QNET_DEPOT_ID": "d-1", "QNET_SERVICE": "web", "QNET_NODE": "n-7",
		"HELLO_WARMUP": "500ms", "HELLO_ALLOW_CRASH": "1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config{port: 8080, depotID: "d-1", service: "web", node: "n-7", warmup: 500 * time.Millisecond, allowCrash: true}
	if good != want {
		t.Fatalf("config = %+v, want %+v", good, want)
	}
	bare, err := configFromEnv(envOf(map[string]string{"PORT": "1", "HELLO_ALLOW_CRASH": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (config{port: 1, depotID: "unknown", service: "unknown", node: "unknown"}); bare != want {
		t.Fatalf("config = %+v, want %+v", bare, want)
	}
	withEcho, err := configFromEnv(envOf(map[string]string{"PORT": "1", "HELLO_UDP_ECHO": "dns-x", "QNET_PORT_DNS_X": "5353"}))
	if err != nil || withEcho.udpEcho != 5353 {
		t.Fatalf("config with HELLO_UDP_ECHO = %+v, %v; want the UDP echo on 5353", withEcho, err)
	}

	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "PORT is not set"},
		{map[string]string{"PORT": "http"}, `PORT="http" is not a valid port; want a number in 1-65535`},
		{map[string]string{"PORT": "0"}, `PORT="0" is not a valid port`},
		{map[string]string{"PORT": "65536"}, `PORT="65536" is not a valid port`},
		{map[string]string{"PORT": "80", "HELLO_WARMUP": "soon"}, `HELLO_WARMUP="soon" is not a valid duration`},
		{map[string]string{"PORT": "80", "HELLO_WARMUP": "-1s"}, `HELLO_WARMUP="-1s" is not a valid duration`},
		{map[string]string{"PORT": "80", "HELLO_UDP_ECHO": "echo"}, `HELLO_UDP_ECHO="echo" names a port, but QNET_PORT_ECHO is not set`},
		{map[string]string{"PORT": "80", "HELLO_UDP_ECHO": "dns-x", "QNET_PORT_DNS_X": "udp"}, `QNET_PORT_DNS_X="udp" is not a valid port`},
	}
	for _, tc := range bad {
		_, err := configFromEnv(envOf(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("configFromEnv(%v) error = %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from the server and read from the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type server struct {
	base   string
	logs   *syncBuffer
	clock  *fakeClock
	exits  *atomic.Int32 // last exit code asked for, -1 if none
	cancel context.CancelFunc
	done   chan error
}

// start serves cfg on a real listener on 127.0.0.1.
func start(t *testing.T, cfg config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{
		base:   "http://" + ln.Addr().String(),
		logs:   &syncBuffer{},
		clock:  &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		exits:  &atomic.Int32{},
		cancel: cancel,
		done:   make(chan error, 1),
	}
	s.exits.Store(-1)
	go func() {
		s.done <- serve(ctx, ln, cfg, s.logs, s.clock.Now, func(code int) { s.exits.Store(int32(code)) })
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	t.Parallel()
	s := start(t, config{depotID: "d-42", service: "web", node: "n-1"})
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/", 200, "hello from d-42 (service web, node n-1)\n"},
		{"/healthz", 200, "ok\n"},
		{"/ready", 200, "ready\n"},
		{"/crash", 403, "crash is disabled; set HELLO_ALLOW_CRASH=1 to allow it\n"},
		{"/nope", 404, "404 page not found\n"},
	}
	for _, tc := range tests {
		status, body := get(t, s.base+tc.path)
		if status != tc.wantStatus || body != tc.wantBody {
			t.Errorf("GET %s = %d %q, want %d %q", tc.path, status, body, tc.wantStatus, tc.wantBody)
		}
	}
	if code := s.exits.Load(); code != -1 {
		t.Fatalf("a disabled /crash asked to exit with %d", code)
	}
	// One log line per request, in slog's text format.
	lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n")
	var reqs []string
	for _, l := range lines {
		if strings.Contains(l, "msg=request") {
			reqs = append(reqs, l)
		}
	}
	if len(reqs) != len(tests) {
		t.Fatalf("got %d request log lines, want %d:\n%s", len(reqs), len(tests), s.logs)
	}
	for i, tc := range tests {
		want := fmt.Sprintf("method=GET path=%s status=%d", tc.path, tc.wantStatus)
		if !strings.Contains(reqs[i], want) || !strings.HasPrefix(reqs[i], "time=") {
			t.Errorf("log line %q, want it to contain %q", reqs[i], want)
		}
	}
}

func TestReadyAfterWarmup(t *testing.T) {
	t.Parallel()
	s := start(t, config{depotID: "unknown", service: "unknown", node: "unknown", warmup: 500 * time.Millisecond})
	if status, body := get(t, s.base+"/ready"); status != 503 || body != "warming up, 500ms left\n" {
		t.Fatalf("GET /ready at start = %d %q, want 503 warming up", status, body)
	}
	if status, _ := get(t, s.base+"/healthz"); status != 200 {
		t.Fatalf("GET /healthz during warm-up = %d, want 200 (alive while not ready)", status)
	}
	s.clock.Advance(499 * time.Millisecond)
	if status, _ := get(t, s.base+"/ready"); status != 503 {
		t.Fatalf("GET /ready 1ms before warm-up ends = %d, want 503", status)
	}
	s.clock.Advance(time.Millisecond)
	if status, body := get(t, s.base+"/ready"); status != 200 || body != "ready\n" {
		t.Fatalf("GET /ready after warm-up = %d %q, want 200 ready", status, body)
	}
}

func TestCrashAllowed(t *testing.T) {
	t.Parallel()
	s := start(t, config{allowCrash: true})
	resp, err := http.Get(s.base + "/crash")
	if err == nil {
		resp.Body.Close()
	}
	if code := s.exits.Load(); code != CrashExitCode {
		t.Fatalf("GET /crash asked to exit with %d, want %d", code, CrashExitCode)
	}
	if !strings.Contains(s.logs.String(), "msg=\"crash requested\"") {
		t.Fatalf("no crash log line in:\n%s", s.logs)
	}
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := start(t, config{})
	addr := strings.TrimPrefix(s.base, "http://")
	if status, _ := get(t, s.base+"/healthz"); status != 200 {
		t.Fatalf("GET /healthz = %d", status)
	}
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return within 10s of cancel")
	}
	// The port may be another process's by now (tests run in parallel); what must not
	// happen is this server answering on it.
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get("http://" + addr + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(body), "ok") {
			t.Fatalf("still serving on %s after shutdown: %q", addr, body)
		}
	}
	if !strings.Contains(s.logs.String(), "msg=stopped") {
		t.Fatalf("no stop log line in:\n%s", s.logs)
	}
}

// freePort returns a port the kernel just handed out and took back.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// TestRun drives Run itself through its environment (so it cannot run in parallel).
func TestRun(t *testing.T) {
	t.Setenv("PORT", "")
	if err := Run(context.Background(), io.Discard); err == nil || !strings.Contains(err.Error(), "PORT is not set") {
		t.Fatalf("Run without PORT = %v, want PORT is not set", err)
	}

	port := freePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("QNET_DEPOT_ID", "depot-9")
	t.Setenv("QNET_SERVICE", "")
	t.Setenv("QNET_NODE", "node-b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() { done <- Run(ctx, logs) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "Run to answer /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if _, body := get(t, base+"/"); body != "hello from depot-9 (service unknown, node node-b)\n" {
		t.Fatalf("GET / = %q", body)
	}

	// A second Run on the same port fails to bind and says where.
	if err := Run(context.Background(), io.Discard); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("listen on 127.0.0.1:%d", port)) {
		t.Fatalf("second Run on a taken port = %v, want a listen error", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}

// TestCrashExitCode runs the service in a child process (this test binary) and checks
// that GET /crash really ends it with exit code 3.
func TestCrashExitCode(t *testing.T) {
	if os.Getenv("HELLO_TEST_CHILD") == "1" {
		// In the child: serve until killed or crashed.
		if err := Run(context.Background(), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	t.Parallel()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashExitCode$")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "HELLO_TEST_CHILD=1", "HELLO_ALLOW_CRASH=1", "PORT="+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(t, 20*time.Second, "the child to answer /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if resp, err := http.Get(base + "/crash"); err == nil {
		resp.Body.Close()
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != CrashExitCode {
			t.Fatalf("child ended with %v, want exit code %d; output:\n%s", err, CrashExitCode, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("child still running 20s after /crash; output:\n%s", out.String())
	}
}

// TestEcho answers datagrams with themselves, and ends when its context does.
func TestEcho(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		echo(ctx, pc)
	}()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	for _, msg := range []string{"one", "two"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("echo of %q = %q, %v", msg, buf[:n], err)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("echo did not end with its context")
	}
}
