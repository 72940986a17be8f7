package wasm

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"qnet.dev/qnet/cgroup"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/depotgroup"
	"qnet.dev/qnet/driver/internal/drivertest"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/wasm/shim"
)

// testParent is the cgroup parent of this test process, removed when the tests end.
var testParent = fmt.Sprintf("qnet-wasm-test-%d", os.Getpid())

// The shared test helpers, by short names.
var (
	start, wait, stop = drivertest.Start, drivertest.Wait, drivertest.Stop
	waitFor           = drivertest.WaitFor
)

// shared is a directory for the whole test binary: the compiled test modules and the
// compilation cache, so each module is built and compiled once per run.
var shared string

// TestMain makes the test binary play the supervisor ("wasm-shim", as the qnet binary
// will) as well as run the tests.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "wasm-shim" {
		os.Exit(shim.Main(os.Args[2:]))
	}
	var err error
	if shared, err = os.MkdirTemp("", "qnet-wasm-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(shared)
	depotgroup.RemoveParent(cgroup.Detect(testParent), testParent)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
	goMissing bool
)

// guest returns the path of a test module built from testdata/guest/<name> with the Go
// toolchain (GOOS=wasip1 GOARCH=wasm); the test is skipped when there is no go command.
func guest(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := osexec.LookPath("go")
		if err != nil {
			if goBin = filepath.Join(runtime.GOROOT(), "bin", "go"); !fileExists(goBin) {
				goMissing = true
				return
			}
		}
		for _, g := range []string{"app", "web"} {
			cmd := osexec.Command(goBin, "build", "-o", filepath.Join(shared, g+".wasm"), "./testdata/guest/"+g)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build test module %s: %v\n%s", g, err, out)
				return
			}
		}
	})
	if goMissing {
		t.Skip("the go command is not installed: the WASI test modules are built from Go source with GOOS=wasip1")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(shared, name+".wasm")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newDriver returns a driver on a fresh runtime directory whose supervisor is this test
// binary. Every depot still running when the test ends is killed.
func newDriver(t testing.TB, edit ...func(*Config)) *Driver {
	return newDriverAt(t, t.TempDir(), edit...)
}

func newDriverAt(t testing.TB, dir string, edit ...func(*Config)) *Driver {
	t.Helper()
	cfg := Config{
		Dir: dir, ShimBinary: os.Args[0], ShimEnv: []string{drivertest.NoRaceExitSleep},
		CacheDir: filepath.Join(shared, "cache"), CgroupParent: testParent,
		// Quiet: the driver's warnings (a lost depot in a test that makes one) may come
		// after the test ended, when t.Log may no longer be used.
		Logger: slog.New(slog.DiscardHandler),
	}
	return drivertest.Open(t, New, cfg, edit, (*Driver).tracked)
}

// tracked returns the handles of the depots d tracks.
func (d *Driver) tracked() []*handle { return d.depots.Handles() }

// appSpec returns a spec running the app test module in the given mode.
func appSpec(t testing.TB, id string, args ...string) driver.Spec {
	return driver.Spec{ID: id, Command: guest(t, "app"), Args: args}
}

func readLog(d *Driver, id string) string {
	out, errPath := d.Logs(id)
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(errPath)
	return string(a) + string(b)
}

// waitLog waits until the depot's logs match re and returns them.
func waitLog(t testing.TB, d *Driver, id, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var logs string
	waitFor(t, fmt.Sprintf("log of %s to match %q", id, re), func() bool {
		logs = readLog(d, id)
		return rx.MatchString(logs)
	})
	return logs
}

// alive reports whether a process with pid exists.
func alive(pid int) bool { return proc.Alive(pid, 0) }

// waitWarm waits until the driver has a warm supervisor ready (and primed).
func (d *Driver) waitWarm(t testing.TB) {
	t.Helper()
	waitFor(t, "a warm supervisor", func() bool {
		d.warmMu.Lock()
		defer d.warmMu.Unlock()
		return d.warm != nil
	})
}

// writeModule writes data as a module file in a fresh directory and returns its path.
func writeModule(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A small WebAssembly encoder for hand-made test modules: the bad ones, and a tiny WASI
// command of the size class of a TinyGo, Rust or C module (a Go module is megabytes).

// tinyModule describes a hand-made module. Every import is a function of type
// (i32, i32, i32, i32) -> i32, as poll_oneoff and fd_write are.
type tinyModule struct {
	imports  [][2]string // module, name
	minPages uint32
	noStart  bool   // export no _start
	body     []byte // code of _start, without locals and the final end
	data     []dataSegment
}

type dataSegment struct {
	offset uint32
	bytes  []byte
}

func uleb(v uint64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func sleb(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func name(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(content)))...), content...)
}

func vec(items ...[]byte) []byte {
	out := uleb(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func (m tinyModule) encode() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	fn4 := []byte{0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f} // (i32 x4) -> i32
	void := []byte{0x60, 0, 0}                              // () -> ()
	out = append(out, section(1, vec(fn4, void))...)
	var imps [][]byte
	for _, im := range m.imports {
		imps = append(imps, append(append(name(im[0]), name(im[1])...), 0x00, 0x00)) // func, type 0
	}
	out = append(out, section(2, vec(imps...))...)
	out = append(out, section(3, vec([]byte{1}))...)                                         // one function of type 1
	out = append(out, section(5, vec(append([]byte{0x00}, uleb(uint64(m.minPages))...)))...) // memory, min only
	exports := [][]byte{append(name("memory"), 0x02, 0x00)}
	if !m.noStart {
		exports = append(exports, append(name("_start"), append([]byte{0x00}, uleb(uint64(len(m.imports)))...)...))
	}
	out = append(out, section(7, vec(exports...))...)
	body := append(append([]byte{0x00}, m.body...), 0x0b) // no locals; end
	out = append(out, section(10, vec(append(uleb(uint64(len(body))), body...)))...)
	var segs [][]byte
	for _, s := range m.data {
		seg := append([]byte{0x00, 0x41}, sleb(int64(s.offset))...) // active, memory 0, i32.const offset
		seg = append(seg, 0x0b)
		seg = append(seg, append(uleb(uint64(len(s.bytes))), s.bytes...)...)
		segs = append(segs, seg)
	}
	if len(segs) > 0 {
		out = append(out, section(11, vec(segs...))...)
	}
	return out
}

// wasiImports are the imports of the tiny WASI command: poll_oneoff is function 0 and
// fd_write function 1.
var wasiImports = [][2]string{{"wasi_snapshot_preview1", "poll_oneoff"}, {"wasi_snapshot_preview1", "fd_write"}}

// i32Const is the instruction i32.const v.
func i32Const(v int32) []byte { return append([]byte{0x41}, sleb(int64(v))...) }

// callDrop calls function fn with four i32 arguments and drops its result.
func callDrop(fn byte, a, b, c, d int32) []byte {
	var out []byte
	for _, v := range []int32{a, b, c, d} {
		out = append(out, i32Const(v)...)
	}
	return append(out, 0x10, fn, 0x1a)
}

// tinyWASI is a WASI command that writes "ready\n" to standard output and then waits
// for an hour at a time, in a loop, with poll_oneoff: a module that runs until stopped
// and never spins. It is 250 bytes.
func tinyWASI() []byte {
	sub := make([]byte, 48) // subscription: userdata 0, clock, monotonic, an hour, relative
	sub[8] = 0              // eventtype clock
	binary.LittleEndian.PutUint32(sub[16:], 1)
	binary.LittleEndian.PutUint64(sub[24:], uint64(time.Hour))
	iov := make([]byte, 8) // one iovec: "ready\n" at 80
	binary.LittleEndian.PutUint32(iov[0:], 80)
	binary.LittleEndian.PutUint32(iov[4:], 6)
	body := callDrop(1, 1, 64, 1, 72) // fd_write(stdout, iovs=64, 1, nwritten=72)
	body = append(body, 0x03, 0x40)   // loop
	body = append(body, callDrop(0, 0, 128, 1, 160)...)
	body = append(body, 0x0c, 0x00, 0x0b) // br 0; end
	return tinyModule{
		imports: wasiImports, minPages: 1, body: body,
		data: []dataSegment{{0, sub}, {64, iov}, {80, []byte("ready\n")}},
	}.encode()
}

// unreachableWASI is a WASI command whose _start traps at once.
func unreachableWASI() []byte {
	return tinyModule{imports: wasiImports, minPages: 1, body: []byte{0x00}}.encode() // unreachable
}

// contains reports whether s contains every one of parts.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
