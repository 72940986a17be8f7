package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/drivertest"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/driver/wasm/internal/proto"
	"qnet.dev/qnet/logfile"
)

func TestStartStop(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := appSpec(t, "sleeper", "sleep")
	s.Meta = map[string]string{"service": "web"}
	h := start(t, d, s)
	if !alive(h.PID()) {
		t.Fatalf("supervisor %d not alive after Start", h.PID())
	}
	if h.StartedAt().IsZero() || h.ID() != "sleeper" || h.Spec().Meta["service"] != "web" {
		t.Errorf("handle: started %v, id %q, meta %v", h.StartedAt(), h.ID(), h.Spec().Meta)
	}
	logs := waitLog(t, d, "sleeper", `ready\n(.|\n)*to stderr`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	if _, err := h.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a running depot = %v, want deadline exceeded", err)
	}
	cancel()
	st := stop(t, h, 10*time.Second)
	if st.Code != 143 || st.Signal != "SIGTERM" || st.Reason != "stopped (killed by SIGTERM)" {
		t.Errorf("Stop = %+v, want code 143, SIGTERM, stopped", st)
	}
	if st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("exit times %v .. %v", st.StartedAt, st.FinishedAt)
	}
	if alive(h.PID()) {
		t.Error("supervisor alive after Stop")
	}
	if st2 := stop(t, h, 0); st2 != st {
		t.Errorf("second Stop = %+v, want %+v", st2, st)
	}
	if err := h.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
	if !strings.Contains(logs, "ready") {
		t.Errorf("stdout.log: %q", logs)
	}
	if err := d.Remove("sleeper"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.depots.Dir("sleeper")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("runtime directory left after Remove: %v", err)
	}
	if err := d.Remove("sleeper"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	for _, code := range []int{0, 3, 255} {
		h := start(t, d, appSpec(t, fmt.Sprintf("exit-%d", code), "exit", strconv.Itoa(code)))
		st := wait(t, h)
		if st.Code != code || st.Signal != "" || st.Reason != fmt.Sprintf("exited with code %d", code) || st.OOMKilled {
			t.Errorf("exit %d: %+v", code, st)
		}
		if !strings.Contains(readLog(d, h.ID()), fmt.Sprintf("exiting with %d", code)) {
			t.Errorf("exit %d: log %q", code, readLog(d, h.ID()))
		}
	}
}

func TestTrap(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	for _, tc := range []struct {
		id, module, want string
		args             []string
	}{
		{"go-trap", guest(t, "app"), "trapped: wasm error: out of bounds memory access (in ", []string{"trap"}},
		{"unreachable", writeModule(t, "unreachable.wasm", unreachableWASI()), "trapped: wasm error: unreachable", nil},
	} {
		h := start(t, d, driver.Spec{ID: tc.id, Command: tc.module, Args: tc.args})
		st := wait(t, h)
		if st.Code != 134 || !strings.HasPrefix(st.Reason, tc.want) || st.Signal != "" {
			t.Errorf("%s: %+v, want code 134 and reason %q…", tc.id, st, tc.want)
		}
		_, errLog := d.Logs(tc.id)
		data, _ := os.ReadFile(errLog)
		if !strings.Contains(string(data), "qnet: the module trapped: wasm error:") || !strings.Contains(string(data), "wasm stack trace:") {
			t.Errorf("%s: stderr.log lacks the trap: %q", tc.id, data)
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	over := appSpec(t, "over", "alloc", "64")
	over.Memory = 48 << 20
	st := wait(t, start(t, d, over))
	if !st.OOMKilled || st.Code == 0 || !strings.HasPrefix(st.Reason, "oom: memory limit of 48 MiB reached (growing the module's memory to ") {
		t.Errorf("allocating 64 MiB under a 48 MiB limit: %+v", st)
	}
	under := appSpec(t, "under", "alloc", "64")
	under.Memory = 256 << 20
	h := start(t, d, under)
	if lim := h.Limits(); !lim.MemoryEnforced || !strings.Contains(lim.Mechanism, "wasm linear memory") {
		t.Errorf("limits %+v, want memory enforced by wasm linear memory", lim)
	}
	if st := wait(t, h); st.Code != 0 || st.OOMKilled {
		t.Errorf("allocating 64 MiB under a 256 MiB limit: %+v", st)
	}
	if !strings.Contains(readLog(d, "under"), "allocated 64 MiB") {
		t.Errorf("log: %q", readLog(d, "under"))
	}

	// A module that needs more at start than its limit is refused by Start.
	big := writeModule(t, "big.wasm", tinyModule{imports: wasiImports, minPages: 100, body: nil}.encode())
	_, err := d.Start(context.Background(), driver.Spec{ID: "big", Command: big, Memory: 1 << 20})
	if !errors.Is(err, driver.ErrBadSpec) || !contains(err.Error(), "needs 6400 KiB of memory at start", "limit of 1 MiB") {
		t.Errorf("module with 100 initial pages under a 1 MiB limit: %v", err)
	}
	_, err = d.Start(context.Background(), driver.Spec{ID: "tiny-limit", Command: big, Memory: 1000})
	if !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), "64 KiB pages") {
		t.Errorf("a limit under one page: %v", err)
	}
}

func TestEnvArgsDataClocks(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := appSpec(t, "env", "env", "two words", "")
	s.Env = []string{"A=1", "EMPTY=", "WITH_EQ=x=y", "LANG=C"}
	for run := 1; run <= 2; run++ {
		st := wait(t, start(t, d, s))
		if st.Code != 0 {
			t.Fatalf("run %d: %+v\n%s", run, st, readLog(d, "env"))
		}
		logs := readLog(d, "env")
		var args, env []string
		for line := range strings.Lines(logs) {
			line = strings.TrimSuffix(line, "\n")
			if v, ok := strings.CutPrefix(line, "env="); ok {
				env = append(env, v)
			}
			if strings.HasPrefix(line, "arg[") {
				args = append(args, line)
			}
		}
		wantArgs := []string{"arg[0]=" + s.Command, "arg[1]=env", "arg[2]=two words", "arg[3]="}
		if !slices.Equal(args[len(args)-4:], wantArgs) {
			t.Errorf("run %d: args %q, want %q", run, args, wantArgs)
		}
		if got := env[len(env)-len(s.Env):]; !slices.Equal(got, s.Env) || len(env) != run*len(s.Env) {
			t.Errorf("run %d: environment %q, want exactly %q", run, env, s.Env)
		}
		if !strings.Contains(logs, fmt.Sprintf("runs=%d", run)) {
			t.Errorf("run %d: the data directory did not persist: %q", run, logs)
		}
		if contains(logs, "escaped /data") || contains(logs, "read /etc/passwd") || contains(logs, "made a symlink") || !contains(logs, "symlink refused: ") {
			t.Errorf("the module reached outside /data: %q", logs)
		}
		if !contains(logs, "year="+strconv.Itoa(time.Now().Year())) || strings.Contains(logs, "slept_ms=0\n") {
			t.Errorf("clocks are not real: %q", logs)
		}
	}
	data, err := os.ReadFile(filepath.Join(d.DataPath("env"), "count"))
	if err != nil || string(data) != "2" {
		t.Errorf("host side of /data/count: %q, %v", data, err)
	}
	if err := d.Remove("env"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.DataPath("env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory left after Remove: %v", err)
	}
}

func TestEnvNotOnDisk(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := appSpec(t, "secret", "sleep")
	s.Env = []string{"DB_PASSWORD=hunter2-secret"}
	h := start(t, d, s)
	waitLog(t, d, "secret", "ready")
	filepath.WalkDir(d.depots.Root(), func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || strings.Contains(path, proto.CacheDirName) || e.Type()&os.ModeSocket != 0 {
			return nil
		}
		if data, _ := os.ReadFile(path); strings.Contains(string(data), "hunter2-secret") {
			t.Errorf("%s holds the depot's secret environment", path)
		}
		return nil
	})
	stop(t, h, time.Second)
}

func TestLogsRotated(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := appSpec(t, "chatty", "print", "1000") // 100,000 bytes
	s.LogMaxBytes, s.LogMaxFiles = 10_000, 2
	if st := wait(t, start(t, d, s)); st.Code != 0 {
		t.Fatalf("%+v", st)
	}
	out, _ := d.Logs("chatty")
	for _, p := range []string{out, logfile.Rotated(out, 1), logfile.Rotated(out, 2)} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 10_000 || fi.Size() == 0 {
			t.Errorf("%s: %v, %v", p, fi, err)
		}
	}
	if _, err := os.Stat(logfile.Rotated(out, 3)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("more rotated files than LogMaxFiles: %v", err)
	}
	var tail strings.Builder
	if err := logfile.Tail(context.Background(), out, 1, false, &tail); err != nil || !strings.HasPrefix(tail.String(), "line 000999 ") {
		t.Errorf("tail = %q, %v", tail.String(), err)
	}
}

// freePort returns a TCP port that is free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestHTTPThroughWASISockets runs a Go net/http server built for wasip1: it serves on
// the listener the driver preopens for $PORT, over real TCP.
func TestHTTPThroughWASISockets(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	port, other := freePort(t), freePort(t)
	s := driver.Spec{ID: "web", Command: guest(t, "web"), Env: []string{
		"DEPOT=web-1", "QNET_HOST=127.0.0.1", "PORT=" + strconv.Itoa(port),
		"QNET_PORT_HTTP=" + strconv.Itoa(port), "QNET_PORT_ADMIN=" + strconv.Itoa(other),
	}}
	h := start(t, d, s)
	// The listener is open once Start returns: no waiting for the server.
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			sup, _ := os.ReadFile(filepath.Join(d.depots.Dir("web"), proto.SupervisorLog))
			t.Fatalf("GET %s: %v\n%s\nsupervisor.log:\n%s", path, err, readLog(d, "web"), sup)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		return string(body)
	}
	if got := get("/hello"); got != "hello from wasm, depot web-1, path /hello\n" {
		t.Errorf("GET /hello = %q", got)
	}
	// Keep-alive connections, several at once, and request bodies.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			payload := strings.Repeat(strconv.Itoa(i), 50_000)
			resp, err := client.Post(base+"/echo", "text/plain", strings.NewReader(payload))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != payload {
				errs <- fmt.Errorf("echo %d: got %d bytes, want %d", i, len(body), len(payload))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	resp, err := client.Post(base+"/data/note", "text/plain", strings.NewReader("kept"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if data, err := os.ReadFile(filepath.Join(d.DataPath("web"), "note")); err != nil || string(data) != "kept" {
		t.Errorf("file written through HTTP into /data: %q, %v", data, err)
	}
	// The second port is open too (file descriptor 5), though this module does not serve it.
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", other)); err != nil {
		t.Errorf("listener for QNET_PORT_ADMIN: %v", err)
	} else {
		c.Close()
	}
	if !strings.Contains(readLog(d, "web"), "serving on") {
		t.Errorf("log: %q", readLog(d, "web"))
	}
	stop(t, h, 5*time.Second)
	// The ports are free again once the depot has ended (a restart binds them at once).
	for _, p := range []int{port, other} {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Errorf("port %d still taken after Stop: %v", p, err)
			continue
		}
		ln.Close()
	}
}

// TestPortInUse: a listener that cannot be opened fails Start, naming the port.
func TestPortInUse(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	s := driver.Spec{ID: "taken", Command: writeModule(t, "tiny.wasm", tinyWASI()), Env: []string{"PORT=" + strconv.Itoa(port)}}
	_, err = d.Start(context.Background(), s)
	if err == nil || !contains(err.Error(), fmt.Sprintf("PORT=127.0.0.1:%d", port), "address already in use") {
		t.Errorf("Start with its port taken: %v", err)
	}
	s.Env = []string{"PORT=http"}
	if _, err := d.Start(context.Background(), s); !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), `PORT="http" is not a port`) {
		t.Errorf("Start with PORT=http: %v", err)
	}
}

func TestBadModules(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	app, err := os.ReadFile(guest(t, "app"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		is   error
		want string
	}{
		{"empty", nil, ErrBadModule, "is empty"},
		{"garbage", []byte("this is not a module at all"), ErrBadModule, "is not a WebAssembly module: it starts with 74 68 69 73"},
		{"elf", append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 64)...), ErrBadModule, "is a native executable"},
		{"wat", []byte("(module (func (export \"_start\")))"), ErrBadModule, "is WebAssembly text (WAT)"},
		{"header-only-part", []byte("\x00asm\x01"), ErrBadModule, "is truncated: 5 bytes"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), ErrBadModule, "is a WebAssembly component"},
		{"version", []byte("\x00asm\x02\x00\x00\x00"), ErrBadModule, "has WebAssembly version 02 00 00 00"},
		{"truncated", app[:len(app)/2], ErrBadModule, "is not a valid WebAssembly module:"},
		{"bad-section", append([]byte("\x00asm\x01\x00\x00\x00"), 0x01, 0x05, 0xff, 0xff), ErrBadModule, "is not a valid WebAssembly module:"},
		{"env-import", tinyModule{imports: [][2]string{{"env", "host_thing"}, {"wasi_snapshot_preview1", "fd_write"}}, minPages: 1}.encode(), ErrBadModule,
			"imports env.host_thing, which QNet does not provide: a depot module may import only WASI preview 1 functions"},
		{"unknown-wasi", tinyModule{imports: [][2]string{{"wasi_snapshot_preview1", "sock_open"}}, minPages: 1}.encode(), ErrBadModule, "imports wasi_snapshot_preview1.sock_open"},
		{"wasi-unstable", tinyModule{imports: [][2]string{{"wasi_unstable", "fd_write"}}, minPages: 1}.encode(), ErrBadModule, "older WASI snapshot 0"},
		{"no-start", tinyModule{imports: wasiImports, minPages: 1, noStart: true}.encode(), ErrBadModule, "exports no _start function"},
	} {
		path := writeModule(t, tc.name+".wasm", tc.data)
		id := "bad-" + tc.name
		h, err := d.Start(context.Background(), driver.Spec{ID: id, Command: path})
		if err == nil {
			t.Errorf("%s: Start succeeded (pid %d)", tc.name, h.PID())
			stop(t, h, 0)
			continue
		}
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Start = %v\nwant %v and %q", tc.name, err, tc.is, tc.want)
		}
		if _, err := os.Stat(d.depots.Dir(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a failed first start left %s: %v", tc.name, d.depots.Dir(id), err)
		}
	}
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(t.TempDir(), "nope.wasm"), "does not exist"},
		{"directory", t.TempDir(), "is not a regular file"},
	} {
		_, err := d.Start(context.Background(), driver.Spec{ID: "bad-" + tc.name, Command: tc.path})
		if !errors.Is(err, driver.ErrCommandNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Start = %v, want ErrCommandNotFound and %q", tc.name, err, tc.want)
		}
	}
	if _, err := d.Start(context.Background(), driver.Spec{ID: "BAD ID", Command: "x"}); !errors.Is(err, driver.ErrBadSpec) {
		t.Errorf("bad ID: %v", err)
	}
}

func TestRelativeModulePath(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	dir := filepath.Dir(writeModule(t, "rel.wasm", tinyWASI()))
	h := start(t, d, driver.Spec{ID: "relative", Command: "rel.wasm", Dir: dir})
	waitLog(t, d, "relative", "ready")
	stop(t, h, time.Second)
}

func TestStartTwiceIsRefused(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := driver.Spec{ID: "once", Command: writeModule(t, "tiny.wasm", tinyWASI())}
	h := start(t, d, s)
	if _, err := d.Start(context.Background(), s); !errors.Is(err, driver.ErrExists) {
		t.Errorf("second Start = %v, want ErrExists", err)
	}
	if err := d.Remove("once"); !errors.Is(err, driver.ErrRunning) {
		t.Errorf("Remove of a running depot = %v, want ErrRunning", err)
	}
	// Another driver on the same directory (an agent started twice) is refused too.
	d2 := newDriverAt(t, d.depots.Root())
	if _, err := d2.Start(context.Background(), s); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Start on a second driver = %v, want ErrExists", err)
	}
	if err := d2.Remove("once"); !errors.Is(err, driver.ErrRunning) {
		t.Errorf("Remove on a second driver = %v, want ErrRunning", err)
	}
	stop(t, h, time.Second)
}

func TestRestartKeepsLogsAndData(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := appSpec(t, "again", "exit", "4")
	wait(t, start(t, d, s))
	if err := os.WriteFile(filepath.Join(d.DataPath("again"), "kept"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, d, s)
	wait(t, h)
	if n := strings.Count(readLog(d, "again"), "exiting with 4"); n != 2 {
		t.Errorf("log has %d runs, want 2: %q", n, readLog(d, "again"))
	}
	if _, err := os.Stat(filepath.Join(d.DataPath("again"), "kept")); err != nil {
		t.Errorf("data lost on restart: %v", err)
	}
	// A failed restart (a broken module) keeps them too.
	s.Command = writeModule(t, "broken.wasm", []byte("broken"))
	if _, err := d.Start(context.Background(), s); !errors.Is(err, ErrBadModule) {
		t.Fatalf("restart with a broken module: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.DataPath("again"), "kept")); err != nil {
		t.Errorf("data lost on a failed restart: %v", err)
	}
	if !strings.Contains(readLog(d, "again"), "exiting with 4") {
		t.Error("logs lost on a failed restart")
	}
}

func TestStopSpinningModule(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, appSpec(t, "spinner", "spin"))
	waitLog(t, d, "spinner", "ready")
	t0 := time.Now()
	st := stop(t, h, 10*time.Second)
	if st.Signal != "SIGTERM" || !strings.HasPrefix(st.Reason, "stopped") {
		t.Errorf("Stop of a busy loop = %+v", st)
	}
	if took := time.Since(t0); took > 5*time.Second {
		t.Errorf("Stop of a busy loop took %v: the module was not interrupted", took)
	}
}

func TestSignals(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, appSpec(t, "sig-int", "sleep"))
	waitLog(t, d, "sig-int", "ready")
	if err := h.Signal(syscall.SIGHUP); err == nil || !strings.Contains(err.Error(), "no signal handlers") {
		t.Errorf("Signal(SIGHUP) = %v, want an error", err)
	}
	if err := h.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 130 || st.Signal != "SIGINT" || st.Reason != "killed by SIGINT" {
		t.Errorf("after SIGINT: %+v", st)
	}
	h = start(t, d, appSpec(t, "sig-kill", "sleep"))
	if err := h.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 137 || st.Signal != "SIGKILL" || st.Reason != "killed by SIGKILL" {
		t.Errorf("after SIGKILL: %+v", st)
	}
}

// TestStopEscalatesToKill: a supervisor that does not end the module within the grace
// (here: frozen with SIGSTOP) is killed.
func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	h := start(t, d, appSpec(t, "frozen", "sleep"))
	waitLog(t, d, "frozen", "ready")
	if err := syscall.Kill(h.PID(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" {
		// SIGSTOP takes effect asynchronously: see the process stopped before Stop.
		waitFor(t, "the supervisor to stop", func() bool {
			data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.PID()))
			i := strings.LastIndexByte(string(data), ')')
			return i > 0 && i+2 < len(data) && data[i+2] == 'T'
		})
	}
	st := stop(t, h, 50*time.Millisecond)
	if st.Signal != "SIGKILL" || st.Code != 137 || !strings.HasPrefix(st.Reason, "stopped (killed by SIGKILL") {
		t.Errorf("Stop of a frozen supervisor = %+v", st)
	}
	if alive(h.PID()) {
		t.Error("supervisor alive after Stop")
	}
}

func TestRecoverReadopts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d1 := newDriverAt(t, dir)
	s1 := appSpec(t, "readopt", "sleep")
	s1.Meta = map[string]string{"ports": `{"http":8080}`, "service": "web"}
	s1.Memory = 64 << 20
	h1 := start(t, d1, s1)
	done := start(t, d1, appSpec(t, "done-early", "exit", "7"))
	wait(t, done)
	waitLog(t, d1, h1.ID(), `ready`)

	d2 := newDriverAt(t, dir)
	h2 := drivertest.CheckRecover(t, d2, h1, "ready", done, 7)
	// The recovering driver has a supervisor ready, primed with the running module.
	d2.waitWarm(t)
	if d2.warm.prime != s1.Command {
		t.Errorf("warm supervisor primed with %q, want %q", d2.warm.prime, s1.Command)
	}

	drivertest.CheckStopReadopted(t, h1, h2)
	waitFor(t, "supervisor to exit", func() bool { return !alive(h1.PID()) })
}

// TestSupervisorKilledIsLost kills the supervisor with SIGKILL behind the driver's back:
// the depot is reported lost, and a later Recover agrees.
func TestSupervisorKilledIsLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d1 := newDriverAt(t, dir)
	h := start(t, d1, appSpec(t, "lost", "sleep"))
	waitLog(t, d1, h.ID(), `ready`)
	if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, h)
	if !st.Lost() || st.Reason != "lost: supervisor died" {
		t.Fatalf("after kill -9 of the supervisor: %+v, want lost", st)
	}
	// An agent that was down when the supervisor died finds no exit record.
	os.Remove(filepath.Join(dir, "lost", proto.ExitFile))
	drivertest.CheckRecoveredLost(t, newDriverAt(t, dir), "lost")
}

// TestRecoverWaitsForStartingSupervisor: an agent that restarts while a supervisor is
// still compiling its module waits for it instead of taking the depot for lost.
func TestRecoverWaitsForStartingSupervisor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d1 := newDriverAt(t, dir)
	// A fresh cache: the compilation takes long enough to be caught in the middle.
	d1.cacheDir = t.TempDir()
	started := make(chan driver.Handle, 1)
	go func() {
		h, err := d1.Start(context.Background(), appSpec(t, "slow", "sleep"))
		if err != nil {
			t.Error(err)
		}
		started <- h
	}()
	waitFor(t, "the supervisor to start", func() bool {
		var st proto.State
		return statefile.Read(filepath.Join(dir, "slow", proto.StateFile), &st) == nil
	})
	d2 := newDriverAt(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hs, err := d2.Recover(ctx)
	if err != nil || len(hs) != 1 {
		t.Fatalf("Recover = %v, %v", hs, err)
	}
	if hs[0].PID() == 0 || hs[0].StartedAt().IsZero() {
		t.Errorf("recovered a starting depot as %d, %v", hs[0].PID(), hs[0].StartedAt())
	}
	h1 := <-started
	if h1 == nil || h1.PID() != hs[0].PID() {
		t.Fatalf("Start returned %v, Recover pid %d", h1, hs[0].PID())
	}
	stop(t, hs[0], time.Second)
	wait(t, h1)
}

func TestWarmSupervisorIsPrimed(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	s := appSpec(t, "primed", "exit", "0")
	wait(t, start(t, d, s))
	d.waitWarm(t)
	h := start(t, d, appSpec(t, "primed-2", "exit", "0"))
	wait(t, h)
	data, _ := os.ReadFile(filepath.Join(d.depots.Dir("primed-2"), proto.SupervisorLog))
	if !strings.Contains(string(data), "module compiled in advance") {
		t.Errorf("second start of the same module did not use the primed supervisor:\n%s", data)
	}
	// A different module is compiled as usual.
	d.waitWarm(t)
	h = start(t, d, driver.Spec{ID: "other", Command: writeModule(t, "tiny.wasm", tinyWASI())})
	stop(t, h, time.Second)
	data, _ = os.ReadFile(filepath.Join(d.depots.Dir("other"), proto.SupervisorLog))
	if strings.Contains(string(data), "module compiled in advance") {
		t.Errorf("a different module was taken from the prime:\n%s", data)
	}
}

// TestPrime: the agent primes a module it is about to start; a start that comes while
// the supervisor is still compiling it waits for that supervisor rather than compile
// the module a second time.
func TestPrime(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	if _, err := d.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A node that runs no wasm depot keeps no supervisor around.
	d.warmMu.Lock()
	idle := d.warm == nil && !d.refilling
	d.warmMu.Unlock()
	if !idle {
		t.Fatal("Recover with no depots made a supervisor ready")
	}
	app := guest(t, "app")
	d.Prime(app)
	h := start(t, d, appSpec(t, "at-once", "exit", "0")) // most likely while it compiles
	wait(t, h)
	data, _ := os.ReadFile(filepath.Join(d.depots.Dir("at-once"), proto.SupervisorLog))
	if !strings.Contains(string(data), "module compiled in advance") {
		t.Errorf("start right after Prime did not use the primed supervisor:\n%s", data)
	}
	tiny := writeModule(t, "tiny.wasm", tinyWASI())
	d.Prime(tiny)
	waitFor(t, "a supervisor primed with tiny.wasm", func() bool {
		d.warmMu.Lock()
		defer d.warmMu.Unlock()
		return d.warm != nil && d.warm.prime == tiny
	})
}

// TestReplicasStartingTogether: two depots of a module no supervisor has compiled yet
// start at once; the module is compiled once, by the supervisor primed for it, and the
// second start takes the next supervisor, primed from the compilation cache, instead of
// compiling the module again beside the first.
func TestReplicasStartingTogether(t *testing.T) {
	t.Parallel()
	d := newDriver(t, func(c *Config) { c.CacheDir = t.TempDir() }) // nothing compiled yet
	if _, err := d.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	app := guest(t, "app")
	d.Prime(app)
	var (
		wg      sync.WaitGroup
		handles = make([]driver.Handle, 2)
	)
	for i, id := range []string{"together-1", "together-2"} {
		wg.Go(func() {
			h, err := d.Start(context.Background(), appSpec(t, id, "exit", "0"))
			if err != nil {
				t.Error(err)
			}
			handles[i] = h
		})
	}
	wg.Wait()
	for _, h := range handles {
		if h != nil {
			wait(t, h)
		}
	}
	for _, id := range []string{"together-1", "together-2"} {
		data, _ := os.ReadFile(filepath.Join(d.depots.Dir(id), proto.SupervisorLog))
		if !strings.Contains(string(data), "module compiled in advance") {
			t.Errorf("%s compiled the module itself:\n%s", id, data)
		}
	}
}

func needCgroups(t *testing.T, d *Driver) cgroup.Hierarchy {
	t.Helper()
	h := d.Cgroups()
	if h.Version == cgroup.None || h.CPU == "" {
		t.Skipf("cgroups with a cpu controller are not available here: %s", h.Reason)
	}
	return h
}

// waitQuarterCPU waits until group g has a CPU quota of 250m, which the supervisor sets
// right after the start is reported.
func waitQuarterCPU(t *testing.T, hier cgroup.Hierarchy, g *cgroup.Group) {
	t.Helper()
	quota, file := "25000 100000", filepath.Join(g.Dirs()[0], "cpu.max")
	if hier.Version == cgroup.V1 {
		quota, file = "25000", filepath.Join(g.Dirs()[0], "cpu.cfs_quota_us")
	}
	waitFor(t, "a CPU quota of 250m in "+file, func() bool {
		data, err := os.ReadFile(file)
		return err == nil && strings.TrimSpace(string(data)) == quota
	})
}

func TestCPULimitInCgroup(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	hier := needCgroups(t, d)
	s := appSpec(t, "limited", "sleep")
	s.CPU, s.Memory = 250, 64<<20
	h := start(t, d, s)
	lim := h.Limits()
	if !lim.CPUEnforced || !lim.MemoryEnforced || lim.Reason != "" || !strings.Contains(lim.Mechanism, hier.Version.String()+" cpu") {
		t.Errorf("limits %+v", lim)
	}
	g, err := hier.Open("limited")
	if err != nil {
		t.Fatal(err)
	}
	pids, err := g.PIDs()
	if err != nil || !slices.Contains(pids, h.PID()) {
		t.Errorf("cgroup members %v (%v), want the supervisor %d", pids, err, h.PID())
	}
	waitQuarterCPU(t, hier, g)
	stop(t, h, time.Second)
	for _, dir := range g.Dirs() {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left after the depot ended: %v", dir, err)
		}
	}
	// A supervisor killed inside its group cannot remove it: the driver does.
	h = start(t, d, func() driver.Spec { s := s; s.ID = "limited-killed"; return s }())
	if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait(t, h)
	g, _ = hier.Open("limited-killed")
	for _, dir := range g.Dirs() {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s of a killed supervisor left: %v", dir, err)
		}
	}
}

// TestWarmSupervisorGroup: a supervisor started in advance waits in a group of its own,
// which becomes its depot's group (renamed, with the depot's CPU limit) when it takes a
// launch, so the start does not pay for moving a running process between groups; the
// driver leaves no such group behind, even of a supervisor killed while it waited.
func TestWarmSupervisorGroup(t *testing.T) {
	t.Parallel()
	d := newDriver(t, func(c *Config) { c.CgroupParent = testParent + "-warm" })
	hier := needCgroups(t, d)
	if hier.Version != cgroup.V1 {
		t.Skip("only cgroup v1 renames groups: on v2 a start moves its supervisor into the depot's group")
	}
	parentDir := filepath.Join(hier.CPU, filepath.FromSlash(hier.Parent))
	warmGroups := func() map[string][]int {
		out := map[string][]int{}
		entries, _ := os.ReadDir(parentDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), proto.WarmGroupPrefix) {
				g, err := hier.Open(e.Name())
				if err != nil {
					t.Fatal(err)
				}
				out[e.Name()], _ = g.PIDs()
			}
		}
		return out
	}
	warmPID := func() int {
		d.waitWarm(t)
		d.warmMu.Lock()
		defer d.warmMu.Unlock()
		return d.warm.Cmd.Process.Pid
	}
	s := appSpec(t, "grouped", "sleep")
	s.CPU = 250
	d.Prime(s.Command)
	pid := warmPID()
	before := warmGroups()
	if len(before) != 1 || !slices.Equal(slices.Collect(maps.Values(before))[0], []int{pid}) {
		t.Fatalf("groups of waiting supervisors %v, want one holding the warm supervisor %d", before, pid)
	}
	h := start(t, d, s)
	if h.PID() != pid {
		t.Fatalf("depot runs in supervisor %d, want the warm one %d", h.PID(), pid)
	}
	g, err := hier.Open("grouped")
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := g.PIDs(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("depot group holds %v (%v), want its supervisor %d", pids, err, pid)
	}
	for name := range before {
		if _, err := os.Stat(filepath.Join(parentDir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the warm group %s still exists under its old name: %v", name, err)
		}
	}
	if lim := h.Limits(); !lim.CPUEnforced {
		t.Errorf("limits %+v, want the CPU enforced", lim)
	}
	waitQuarterCPU(t, hier, g)
	stop(t, h, time.Second)

	// The next warm supervisor, killed while it waits: Close removes its group.
	next := warmPID()
	if err := syscall.Kill(next, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.Remove("grouped")
	d.Close()
	if left := warmGroups(); len(left) != 0 {
		t.Errorf("groups of waiting supervisors left after Close: %v", left)
	}
	if _, err := os.Stat(parentDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the driver's cgroup parent is left after Close: %v", err)
	}
}

func TestLimitsWithoutCgroups(t *testing.T) {
	t.Parallel()
	none := &cgroup.Hierarchy{Version: cgroup.None, Parent: testParent, Reason: "cgroups are off for this test"}
	d := newDriver(t, func(c *Config) { c.Cgroup = none })
	s := driver.Spec{ID: "free", Command: writeModule(t, "tiny.wasm", tinyWASI()), CPU: 500}
	h := start(t, d, s)
	lim := h.Limits()
	if lim.CPUEnforced || lim.MemoryEnforced || lim.Mechanism != "none" ||
		lim.Reason != "CPU not limited: wazero has no CPU quota, and cgroups are off for this test; no memory limit requested" {
		t.Errorf("limits %+v", lim)
	}
	stop(t, h, time.Second)

	strict := newDriver(t, func(c *Config) { c.Cgroup = none; c.RequireLimits = true })
	_, err := strict.Start(context.Background(), s)
	if !errors.Is(err, driver.ErrLimitsUnavailable) || !strings.Contains(err.Error(), "wazero has no CPU quota") {
		t.Errorf("RequireLimits without cgroups: %v", err)
	}
	s.CPU, s.Memory = 0, 1<<20
	h = start(t, strict, s) // a memory limit alone is enforced everywhere
	if lim := h.Limits(); !lim.MemoryEnforced || lim.Mechanism != "wasm linear memory" {
		t.Errorf("memory limit without cgroups: %+v", lim)
	}
	stop(t, h, time.Second)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Dir is empty"},
		{Config{Dir: "x", CgroupParent: "../up"}, "CgroupParent"},
		{Config{Dir: "x", StartTimeout: -1}, "StartTimeout"},
		{Config{Dir: "x", ListenHost: "my host"}, "ListenHost"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if _, err := New(Config{Dir: long, ShimBinary: os.Args[0]}); err == nil || !strings.Contains(err.Error(), "control sockets") {
		t.Errorf("New with a long Dir: %v", err)
	}
	if _, err := New(Config{Dir: t.TempDir(), ShimBinary: "/nonexistent/qnet"}); err == nil {
		t.Error("New with a missing ShimBinary succeeded")
	}
}

func TestListenersFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want []proto.Listener
		err  string
	}{
		{nil, nil, ""},
		{[]string{"PORT=8080"}, []proto.Listener{{Env: "PORT", Host: "127.0.0.1", Port: 8080}}, ""},
		{[]string{"QNET_PORT_WEB=8080", "PORT=8080", "QNET_PORT_ADMIN=9000", "QNET_HOST=10.0.0.5"}, []proto.Listener{
			{Env: "PORT", Host: "10.0.0.5", Port: 8080}, {Env: "QNET_PORT_ADMIN", Host: "10.0.0.5", Port: 9000}}, ""},
		{[]string{"PORT=1", "QNET_HOST=::1"}, []proto.Listener{{Env: "PORT", Host: "[::1]", Port: 1}}, ""},
		{[]string{"PORT=0"}, nil, `PORT="0" is not a port`},
		{[]string{"QNET_PORT_X=70000"}, nil, `QNET_PORT_X="70000" is not a port`},
	} {
		got, err := listenersFor(driver.Spec{ID: "x", Env: tc.env}, "127.0.0.1")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err %v, want %q", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v: %+v, %v; want %+v", tc.env, got, err, tc.want)
		}
	}
}

func TestLogsRejectsBadIDs(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	for _, id := range []string{"", "../x", "a/b", "UP"} {
		if out, errPath := d.Logs(id); out != "" || errPath != "" || d.DataPath(id) != "" {
			t.Errorf("Logs(%q) = %q, %q", id, out, errPath)
		}
	}
}

// TestSupervisorUsage: run by hand, the supervisor explains itself.
func TestSupervisorUsage(t *testing.T) {
	t.Parallel()
	cmd := osexec.Command(os.Args[0], "wasm-shim")
	out, err := cmd.CombinedOutput()
	var ee interface{ ExitCode() int }
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "not meant to be run by hand") {
		t.Errorf("wasm-shim without the agent's connection: %v\n%s", err, out)
	}
}

// TestMounts checks that a module reads file mounts at their targets (config and
// secret files) through a read-only directory holding only them, that a read-only
// directory mount refuses changes, and that a writable one takes them.
func TestMounts(t *testing.T) {
	t.Parallel()
	d := newDriver(t)
	node := t.TempDir()
	for name, data := range map[string]string{"nginx": "worker_processes 1;", "tls-key": "key-material", "other": "not mounted"} {
		if err := os.WriteFile(filepath.Join(node, name), []byte(data), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	shared, scratch := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "ro.txt"), []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := appSpec(t, "mounts", "files", "/etc/nginx/nginx.conf", "/run/secrets/tls.key", "/srv/ro.txt", "/scratch/new.txt")
	s.Mounts = []driver.Mount{
		{Source: filepath.Join(node, "nginx"), Target: "/etc/nginx/nginx.conf", ReadOnly: true},
		{Source: filepath.Join(node, "tls-key"), Target: "/run/secrets/tls.key", ReadOnly: true},
		{Source: shared, Target: "/srv", ReadOnly: true},
		{Source: scratch, Target: "/scratch"},
	}
	if st := wait(t, start(t, d, s)); st.Code != 0 {
		t.Fatalf("%+v\n%s", st, readLog(d, "mounts"))
	}
	logs := readLog(d, "mounts")
	for _, w := range []string{
		`read /etc/nginx/nginx.conf: "worker_processes 1;" <nil>`,
		`list /etc/nginx: [nginx.conf] <nil>`,
		`write /etc/nginx/nginx.conf refused`,
		`read /run/secrets/tls.key: "key-material" <nil>`,
		`list /run/secrets: [tls.key] <nil>`,
		`write /run/secrets/tls.key refused`,
		`read /srv/ro.txt: "shared" <nil>`,
		`write /srv/ro.txt refused`,
		`wrote /scratch/new.txt`,
	} {
		if !strings.Contains(logs, w+"\n") {
			t.Errorf("logs lack %q:\n%s", w, logs)
		}
	}
	for path, want := range map[string]string{filepath.Join(node, "nginx"): "worker_processes 1;", filepath.Join(shared, "ro.txt"): "shared", filepath.Join(scratch, "new.txt"): "changed"} {
		if data, _ := os.ReadFile(path); string(data) != want {
			t.Errorf("node file %s holds %q, want %q", path, data, want)
		}
	}

	// What WASI cannot show is refused before anything starts.
	bad := appSpec(t, "mounts-bad", "files")
	bad.Mounts = []driver.Mount{{Source: filepath.Join(node, "nginx"), Target: "/etc/nginx.conf"}}
	if _, err := d.Start(context.Background(), bad); !errors.Is(err, driver.ErrBadSpec) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Start with a writable file mount = %v, want ErrBadSpec saying file mounts are read-only", err)
	}
}
