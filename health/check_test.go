package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/manifest"
)

func TestNewCheckErrors(t *testing.T) {
	t.Parallel()
	two := Target{Ports: map[string]int{"http": 20001, "metrics": 20002}}
	tests := []struct {
		name   string
		probe  *manifest.Probe
		target Target
		want   string // substring of the error
	}{
		{"nil probe", nil, two, "no probe given"},
		{"nothing set", &manifest.Probe{}, two, "exactly one of http, tcp and exec must be set, got 0"},
		{"two set", &manifest.Probe{HTTP: &manifest.HTTPCheck{Path: "/"}, TCP: &manifest.TCPCheck{}}, two, "got 2"},
		{"unknown named port", &manifest.Probe{HTTP: &manifest.HTTPCheck{Path: "/", Port: "web"}}, two,
			`http.port: port "web" is not a port of this depot; valid names: "http", "metrics"`},
		{"unknown port, none declared", &manifest.Probe{TCP: &manifest.TCPCheck{Port: "web"}}, Target{},
			`tcp.port: port "web" is not a port of this depot; valid names: (none; declare ports in spec.ports)`},
		{"number out of range", &manifest.Probe{TCP: &manifest.TCPCheck{Port: "70000"}}, two,
			`tcp.port: port "70000" is not a valid port number (want 1-65535)`},
		{"port zero", &manifest.Probe{TCP: &manifest.TCPCheck{Port: "0"}}, two, "not a valid port number"},
		{"no port and no default", &manifest.Probe{TCP: &manifest.TCPCheck{}}, two,
			"no port given and the depot has 2 ports"},
		{"bad host port", &manifest.Probe{TCP: &manifest.TCPCheck{Port: "http"}},
			Target{Ports: map[string]int{"http": 0}}, `port "http": host port: 0 is out of range`},
		{"path without slash", &manifest.Probe{HTTP: &manifest.HTTPCheck{Path: "healthz", Port: "http"}}, two,
			`http.path: path "healthz" must start with /`},
		{"path with space", &manifest.Probe{HTTP: &manifest.HTTPCheck{Path: "/a b", Port: "http"}}, two,
			"contains a space or control character"},
		{"empty command", &manifest.Probe{Exec: &manifest.ExecCheck{}}, two, "exec.command: no command given"},
		{"blank program", &manifest.Probe{Exec: &manifest.ExecCheck{Command: []string{" "}}}, two, "no command given"},
		{"negative timeout", &manifest.Probe{TCP: &manifest.TCPCheck{Port: "http"}, Timeout: manifest.Duration(-time.Second)},
			two, "timeout -1s is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCheck(tc.probe, tc.target)
			if err == nil {
				t.Fatalf("NewCheck = %T, want error containing %q", c, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewCheck error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestResolvePort(t *testing.T) {
	t.Parallel()
	target := Target{
		Ports:        map[string]int{"http": 20001, "metrics": 20002},
		ServicePorts: map[int]int{8080: 20001, 9090: 20002},
		DefaultPort:  20001,
	}
	tests := []struct {
		spec   string
		target Target
		want   int
	}{
		{"http", target, 20001},
		{"metrics", target, 20002},
		{"9090", target, 20002},                                   // a service port number maps to its host port
		{"7000", target, 7000},                                    // any other number is used as it is
		{"", target, 20001},                                       // the default port
		{" http ", target, 20001},                                 // surrounding space is ignored
		{"", Target{Ports: map[string]int{"only": 25000}}, 25000}, // the only port is the default
	}
	for _, tc := range tests {
		got, err := resolvePort(tc.spec, tc.target)
		if err != nil || got != tc.want {
			t.Errorf("resolvePort(%q) = %d, %v; want %d", tc.spec, got, err, tc.want)
		}
	}
}

// portOf returns the port a test server listens on.
func portOf(t *testing.T, addr net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "deep=1" {
			http.Error(w, "query lost", http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
		http.Error(w, "should not be reached", http.StatusInternalServerError)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the client gives up
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	target := Target{Ports: map[string]int{"http": portOf(t, srv.Listener.Addr())}}

	tests := []struct {
		path    string
		timeout time.Duration
		wantErr string // empty: the check passes
	}{
		{"/ok?deep=1", time.Second, ""},
		{"/redirect", time.Second, ""},
		{"/missing", time.Second, "status 404 Not Found"},
		{"/broken", time.Second, `status 503 Service Unavailable: "database down"`},
		{"/slow", 100 * time.Millisecond, "no answer within 100ms"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			c, err := NewCheck(&manifest.Probe{
				HTTP:    &manifest.HTTPCheck{Path: tc.path, Port: "http"},
				Timeout: manifest.Duration(tc.timeout),
			}, target)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Run(context.Background())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Run = %v, want pass", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Run = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
	t.Run("redirect not followed", func(t *testing.T) {
		// Runs after the parallel subtests above finished.
		if n := targetHits.Load(); n != 0 {
			t.Fatalf("redirect target was fetched %d times, want 0", n)
		}
	})
}

func TestHTTPCheckClosesConnections(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open[c] = true
		case http.StateClosed, http.StateHijacked:
			delete(open, c)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := NewCheck(&manifest.Probe{HTTP: &manifest.HTTPCheck{Path: "/"}},
		Target{DefaultPort: portOf(t, srv.Listener.Addr())})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := c.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the server to see every check connection closed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(open) == 0
	})
}

func TestTCPCheck(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := portOf(t, ln.Addr())
	c, err := NewCheck(&manifest.Probe{TCP: &manifest.TCPCheck{Port: strconv.Itoa(port)}}, Target{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("Run against a listener = %v, want pass", err)
	}

	// A port nothing listens on, held so that no other test can start listening on it.
	closedPort := refusingPort(t)
	c, err = NewCheck(&manifest.Probe{TCP: &manifest.TCPCheck{Port: "db"}},
		Target{Ports: map[string]int{"db": closedPort}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background())
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Run against a closed port = %v, want connection refused", err)
	}
}

func TestExecCheck(t *testing.T) {
	t.Parallel()
	sh, err := lookSh()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name    string
		script  string
		wantErr string
	}{
		{"exit 0", "exit 0", ""},
		{"exit 1 with output", "echo 'disk full' >&2; exit 1", `exit status 1: "disk full"`},
		{"env given", `test "$QNET_TEST_VALUE" = depot-value`, ""},
		{"env replaced, not inherited", `test -z "$HOME"`, ""}, // HOME is set for the test process
		{"working dir", `test "$(pwd -P)" = "$EXPECT_DIR"`, ""},
		{"background child holding output", "sleep 60 & exit 0", ""},
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Env: []string{"QNET_TEST_VALUE=depot-value", "EXPECT_DIR=" + realDir, "PATH=" + os.Getenv("PATH")}, Dir: dir}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.script, "$HOME") && os.Getenv("HOME") == "" {
				t.Skip("HOME is not set for the test process, so there is nothing that could leak")
			}
			c, err := NewCheck(&manifest.Probe{
				Exec:    &manifest.ExecCheck{Command: []string{sh, "-c", tc.script}},
				Timeout: manifest.Duration(5 * time.Second),
			}, target)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Run(context.Background())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Run = %v, want pass", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Run = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
	t.Run("missing program", func(t *testing.T) {
		c, err := NewCheck(&manifest.Probe{Exec: &manifest.ExecCheck{Command: []string{"/nonexistent/qnet-check"}}}, target)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("Run = %v, want no such file", err)
		}
	})
}

// TestExecCheckTimeoutKillsGroup checks that a command that overruns its timeout is
// killed together with the children it started.
func TestExecCheckTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	sh, err := lookSh()
	if err != nil {
		t.Skip(err)
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	c, err := NewCheck(&manifest.Probe{
		Exec:    &manifest.ExecCheck{Command: []string{sh, "-c", `sleep 60 & echo $! > "$PID_FILE"; wait`}},
		Timeout: manifest.Duration(300 * time.Millisecond),
	}, Target{Env: []string{"PID_FILE=" + pidFile, "PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = c.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "killed after 300ms without exiting") {
		t.Fatalf("Run = %v, want a timeout error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Run took %v after a 300ms timeout", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the check never wrote its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the check's child process to die", func() bool { return !alive(pid) })
}

// alive reports whether pid is a process that has not exited (zombies count as exited).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func lookSh() (string, error) {
	for _, p := range []string{"/bin/sh", "/usr/bin/sh"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no /bin/sh on this machine; exec checks need a shell to test")
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// refusingPort returns a loopback TCP port that refuses connections for the rest of the
// test: a socket is bound to it but never listens, so the kernel answers every SYN with a
// reset, and no other process can take the port in the meantime (a port taken from the
// kernel and given back can be reused by a test running in parallel).
func refusingPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}
