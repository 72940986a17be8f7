package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// qnetBin is the qnet binary TestMain built, with symbolic links resolved so that it
	// equals what /proc/PID/exe shows. It is named qnet because the example manifests
	// run "qnet example-hello" and the agent finds qnet next to itself.
	qnetBin string
	// skipReason, when set, is why the tests cannot run here: they skip with it.
	skipReason string
)

// commandTimeout bounds each one-shot qnet command.
const commandTimeout = 90 * time.Second

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	goTool, err := findGo()
	if err != nil {
		skipReason = err.Error()
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "qnet-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	bin := filepath.Join(dir, "qnet")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/qnet")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s build -o %s ./cmd/qnet: %v\n%s", goTool, bin, err, out)
		return 1
	}
	qnetBin = bin
	return m.Run()
}

// findGo finds the Go toolchain that builds the binary: go on PATH, else the one in
// /usr/local/go.
func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	const fallback = "/usr/local/go/bin/go"
	if fi, err := os.Stat(fallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", errors.New("no Go toolchain to build the qnet binary with: neither `go` on PATH nor " + fallback)
}

// user is one user's side of a test: a scratch directory and a context file of their
// own, shared by the qnet commands they run. The commands' environment carries a tag
// naming the user, which the processes they start inherit.
type user struct {
	t      *testing.T
	dir    string
	config string
}

func newUser(t *testing.T) *user {
	t.Helper()
	if skipReason != "" {
		t.Skip("e2e: " + skipReason)
	}
	dir := t.TempDir()
	return &user{t: t, dir: dir, config: filepath.Join(dir, "config.yaml")}
}

// env is the environment of the user's commands: the test's, without any QNET_
// variable of the machine, and with the user's context file.
func (u *user) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "QNET_") {
			env = append(env, kv)
		}
	}
	return append(env, "QNET_CONFIG="+u.config, u.tag())
}

// tag is the environment variable that marks the processes of this user.
func (u *user) tag() string { return "QNET_E2E_USER=" + u.dir }

// result is how a qnet command ended.
type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("qnet %s: exit %d\n--- stdout:\n%s--- stderr:\n%s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// qnet runs a qnet command to its end and returns how it ended.
func (u *user) qnet(args ...string) result {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qnetBin, args...)
	cmd.Env = u.env()
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		u.t.Fatalf("qnet %s did not end within %s\n%s", strings.Join(args, " "), commandTimeout, r)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		u.t.Fatalf("run qnet %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs a qnet command that must succeed.
func (u *user) ok(args ...string) result {
	u.t.Helper()
	r := u.qnet(args...)
	if r.code != 0 {
		u.t.Fatalf("want exit 0\n%s", r)
	}
	return r
}

// json runs a qnet command that prints JSON and decodes it into v.
func (u *user) json(v any, args ...string) {
	u.t.Helper()
	r := u.ok(args...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		u.t.Fatalf("decode the output of qnet %s: %v\n%s", strings.Join(args, " "), err, r)
	}
}

// service and depot are the fields of `qnet get ... -o json` the tests look at.
type service struct {
	Name     string `json:"name"`
	Revision uint64 `json:"revision"`
	Desired  int    `json:"desired"`
	Placed   int    `json:"placed"`
	Running  int    `json:"running"`
	Ready    int    `json:"ready"`
}

type depot struct {
	ID      string `json:"id"`
	Service string `json:"service"`
	Node    string `json:"node"`
	Status  struct {
		State    string `json:"state"`
		Ready    bool   `json:"ready"`
		PID      int    `json:"pid"`
		Restarts int    `json:"restarts"`
		Reason   string `json:"reason"`
	} `json:"status"`
	Addrs map[string]string `json:"addrs"`
}

func (u *user) services() []service {
	u.t.Helper()
	var s []service
	u.json(&s, "get", "services", "-o", "json")
	return s
}

func (u *user) depots() []depot {
	u.t.Helper()
	var d []depot
	u.json(&d, "get", "depots", "-o", "json")
	return d
}

// proc is a long-running qnet command (dev, agent) started in its own process group.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string      // stdout and stderr, line by line, as they came
	changed chan struct{} // closed and replaced when a line comes

	exited chan struct{} // closed once the process is gone and its output read
	code   int           // exit code once exited; -1 when a signal ended it
}

// start starts a long-running qnet command. The test's cleanup kills its process
// group if it still runs.
func (u *user) start(args ...string) *proc {
	u.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		u.t.Fatal(err)
	}
	cmd := exec.Command(qnetBin, args...)
	cmd.Env = u.env()
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		u.t.Fatalf("start qnet %s: %v", strings.Join(args, " "), err)
	}
	w.Close()
	p := &proc{t: u.t, name: "qnet " + strings.Join(args, " "), cmd: cmd, changed: make(chan struct{}), exited: make(chan struct{})}
	// The goroutine ends when the process has exited and its output is read; the
	// cleanup below makes sure the process exits.
	go p.run(r)
	u.t.Cleanup(p.stop)
	return p
}

func (p *proc) run(r *os.File) {
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	err := p.cmd.Wait()
	// A process the command started and left running could hold the pipe open; it
	// does not get to keep this goroutine.
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		r.Close()
		<-read
	}
	r.Close()
	p.code = 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		p.code = ee.ExitCode()
	} else if err != nil {
		p.code = -1
	}
	close(p.exited)
}

// stop kills the process group unless the process already exited, and shows the
// command's output when the test failed.
func (p *proc) stop() {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.t.Errorf("%s (pid %d) still runs 10s after SIGKILL", p.name, p.cmd.Process.Pid)
		}
	}
	if p.t.Failed() {
		p.t.Logf("output of %s:\n%s", p.name, p.output())
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *proc) allLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// waitLine waits until the command prints a line that contains every one of want,
// and returns it. It fails the test when the command exits or timeout passes first.
func (p *proc) waitLine(timeout time.Duration, want ...string) string {
	p.t.Helper()
	match := func(l string) bool {
		for _, w := range want {
			if !strings.Contains(l, w) {
				return false
			}
		}
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines, changed := p.lines[seen:], p.changed
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		select {
		case <-changed:
		case <-p.exited:
			for _, l := range p.allLines()[seen:] {
				if match(l) {
					return l
				}
			}
			p.t.Fatalf("%s exited with code %d before printing a line with %q; output:\n%s", p.name, p.code, want, p.output())
		case <-deadline.C:
			p.t.Fatalf("%s printed no line with %q within %s; output:\n%s", p.name, want, timeout, p.output())
		}
	}
}

// signal sends sig to the process itself (not its group), as kill(1) would.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.pid(), sig); err != nil {
		p.t.Fatalf("send %v to %s: %v", sig, p.name, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 for a signal).
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s; output:\n%s", p.name, timeout, p.output())
		return 0
	}
}

// osProc is a process as /proc shows it.
type osProc struct {
	pid     int
	args    []string
	session int
	exe     string
}

// mode is the qnet subcommand the process runs ("shim", "example-hello"), or "".
func (p osProc) mode() string {
	if p.exe != qnetBin || len(p.args) < 2 {
		return ""
	}
	return p.args[1]
}

// processes lists the live processes of the machine; zombies and processes that exit
// while they are read are left out.
func processes(t *testing.T) []osProc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var out []osProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, session, ok := procStat(pid)
		if !ok || state == 'Z' || state == 'X' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		out = append(out, osProc{pid: pid, args: strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), session: session, exe: exe})
	}
	return out
}

// procStat reads the state and session of a process from /proc/PID/stat.
func procStat(pid int) (state byte, session int, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 4 {
		return 0, 0, false
	}
	session, err = strconv.Atoi(f[3])
	return f[0][0], session, err == nil
}

// running reports whether pid is a live process (not a zombie).
func running(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// environ reads the environment of a process.
func environ(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	return strings.Split(string(data), "\x00")
}

// nodeProcesses lists what runs for the user's node apart from the qnet commands the
// user started: the shims (the agent gives them its environment, so they carry the
// user's tag; a warm shim that waits for a depot too), everything in the shims'
// sessions (the depots), and example services that say they belong to node nodeID (""
// when not known yet), should one outlive its shim.
func (u *user) nodeProcesses(nodeID string) []osProc {
	u.t.Helper()
	all := processes(u.t)
	shims := map[int]bool{}
	for _, p := range all {
		if p.mode() == "shim" && slices.Contains(environ(p.pid), u.tag()) {
			shims[p.pid] = true
		}
	}
	var out []osProc
	for _, p := range all {
		mine := shims[p.pid] || shims[p.session]
		if !mine && nodeID != "" && p.mode() == "example-hello" {
			mine = slices.Contains(environ(p.pid), "QNET_NODE="+nodeID)
		}
		if mine {
			out = append(out, p)
		}
	}
	return out
}

// withMode picks the processes that run a qnet subcommand ("shim", "example-hello").
func withMode(ps []osProc, mode string) []osProc {
	var out []osProc
	for _, p := range ps {
		if p.mode() == mode {
			out = append(out, p)
		}
	}
	return out
}

// pids lists the processes' IDs.
func pids(ps []osProc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.pid
	}
	return out
}

// killNodeAtCleanup kills, when the test ends, whatever processes of the user's node
// are left: depots outlive their agent by design, so killing the agent's process group
// does not reach them. Call it before starting the node, so that it runs after the
// node's process was killed. The tests check what is left themselves; this only
// keeps a failed test from leaving processes behind.
func (u *user) killNodeAtCleanup(nodeID *string) {
	u.t.Cleanup(func() {
		for _, p := range u.nodeProcesses(*nodeID) {
			u.t.Logf("killing process %d left running: %q", p.pid, p.args)
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
}

// waitFor polls cond until it holds, failing the test after timeout with what cond
// last said.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		done, last := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		<-tick.C
	}
}

// freeAddr returns a loopback address with a port that is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpClient reaches depots; it keeps no idle connection, so nothing outlives a test.
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches url and returns the status code and body.
func get(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// wantHello checks that the depot at addr answers as the example service of depot id.
func wantHello(t *testing.T, addr, id string) {
	t.Helper()
	code, body, err := get("http://" + addr + "/")
	if err != nil || code != http.StatusOK || !strings.Contains(body, "hello from "+id) {
		t.Fatalf("GET http://%s/ = %d %q, %v; want 200 and \"hello from %s\"", addr, code, body, err, id)
	}
}
