//go:build linux

package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/internal/depots"
	"qnet.dev/qnet/driver/internal/proc"
	"qnet.dev/qnet/driver/internal/statefile"
	"qnet.dev/qnet/driver/oci/network"
	"qnet.dev/qnet/logfile"
)

// get fetches url, retrying until the deadline (the server needs a moment to listen).
func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	var body string
	waitFor(t, "an answer from "+url, func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == 200
	})
	return body
}

func TestServeThroughHostPort(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	port, udpPort := freePort(t), freePort(t)
	s := imageSpec("web-1", img)
	s.Env = []string{"APP_PORT=9090", "SHARED=spec"}
	s.Ports = map[string]driver.PortMapping{
		"http": {Host: port, Container: 9090, Protocol: "tcp"},
		"dns":  {Host: udpPort, Container: 9090, Protocol: "udp"},
	}
	s.CPU, s.Memory = 500, 64<<20
	h, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if h.PID() <= 0 || h.StartedAt().IsZero() {
		t.Errorf("PID %d, StartedAt %v: want the container's first process", h.PID(), h.StartedAt())
	}
	if body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); body != "hello from web-1\n" {
		t.Errorf("answer through host port %d = %q, want the container's, with its hostname", port, body)
	}
	// UDP too.
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", udpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var answer string
	waitFor(t, "a UDP answer", func() bool {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		answer = string(buf[:n])
		return err == nil
	})
	if answer != "udp echo: ping" {
		t.Errorf("UDP answer = %q", answer)
	}
	lim := h.Limits()
	if !lim.CPUEnforced || !lim.MemoryEnforced {
		t.Errorf("limits %+v: want CPU and memory enforced by %s", lim, d.Cgroups().Version)
	}
	if got := logOf(d, "web-1", false); !strings.Contains(got, "listening on 9090") {
		t.Errorf("stdout log = %q", got)
	}
	if got := logOf(d, "web-1", true); !strings.Contains(got, "stderr works") {
		t.Errorf("stderr log = %q", got)
	}
	// The logs are the exec driver's, readable by the same tailing.
	o, _ := d.Logs("web-1")
	var tail strings.Builder
	if err := logfile.Tail(context.Background(), o, 10, false, &tail); err != nil || !strings.Contains(tail.String(), "listening on 9090") {
		t.Errorf("logfile.Tail = %q, %v", tail.String(), err)
	}
	// config.json, which holds the environment, is gone once the container runs.
	if _, err := os.Stat(filepath.Join(d.depots.Dir("web-1"), configFile)); err == nil {
		t.Error("config.json (with the environment) is still on disk")
	}
	st, err := h.Stop(context.Background(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Go's runtime handles SIGTERM, so the server, PID 1 of its namespace, gets it; its
	// attempt to die of it is ignored (PID 1), and the runtime then exits with code 2.
	if st.Reason != "stopped (exited with code 2)" || st.Code != 2 {
		t.Errorf("stop status = %+v, want stopped by SIGTERM (exit code 2)", st)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Error("the host port still answers after the depot stopped")
	}
	if err := d.Remove("web-1"); err != nil {
		t.Fatal(err)
	}
}

func TestExitCodesAndLogs(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	for _, code := range []int{0, 3} {
		id := fmt.Sprintf("exit-%d", code)
		h, err := d.Start(context.Background(), imageSpec(id, img, "exit", strconv.Itoa(code)))
		if err != nil {
			t.Fatal(err)
		}
		st := wait(t, h)
		if st.Code != code || st.Signal != "" || st.Reason != fmt.Sprintf("exited with code %d", code) {
			t.Errorf("%s: status %+v", id, st)
		}
		if got := logOf(d, id, false); got != fmt.Sprintf("exiting with %d\n", code) {
			t.Errorf("%s: stdout %q", id, got)
		}
		if got := logOf(d, id, true); !strings.Contains(got, "to stderr") {
			t.Errorf("%s: stderr %q", id, got)
		}
	}
	// A restart of an exited depot: its logs continue.
	h, err := d.Start(context.Background(), imageSpec("exit-3", img, "exit", "4"))
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 4 {
		t.Errorf("restarted depot: %+v", st)
	}
	if got := logOf(d, "exit-3", false); got != "exiting with 3\nexiting with 4\n" {
		t.Errorf("restarted depot's stdout %q: want both runs", got)
	}
}

func TestKilled(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	h, err := d.Start(context.Background(), imageSpec("kill-9", img, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the program to run", func() bool { return strings.Contains(logOf(d, "kill-9", false), "sleeping") })
	if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, h)
	if st.Code != 137 || st.Signal != "SIGKILL" || st.Reason != "killed by SIGKILL" || st.OOMKilled {
		t.Errorf("status after kill -9 = %+v", st)
	}
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	if d.Cgroups().Memory == "" {
		t.Skipf("no memory controller: %s", d.Cgroups().Reason)
	}
	s := imageSpec("oom", img, "alloc")
	s.Memory = 32 << 20
	h, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	st := wait(t, h)
	if !st.OOMKilled || !strings.HasPrefix(st.Reason, "oom killed: memory limit of 33554432 bytes") || st.Signal != "SIGKILL" {
		t.Errorf("status = %+v, want an OOM kill at the limit", st)
	}
}

func TestProcessConfig(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store, func(c *depot.ImageConfig) { c.User = "app"; c.WorkingDir = "/work/dir" })
	d := newDriver(t, store)
	for _, tc := range []struct {
		id, user string
		ro       bool
		want     []string
	}{
		{"id-app", "", false, []string{
			"uid=1000 gid=1000 groups=[50] cwd=/work/dir hostname=id-app",
			"env:IMAGE_VAR=from-image", "env:SHARED=spec", "env:SPEC_VAR=1", "env:HOME=/home/app", "env:PATH=/usr/bin:/bin",
			"write /tmp/probe: ok", "write /dev/shm/probe: ok",
			"stat /proc/keys: Dcrw-rw-rw- 0", // masked: /dev/null bound over it
			"stat /dev/null: Dcrw-rw-rw- 0",
			"stat /sys/firmware: dtrwxrwxrwx 40", // masked: an empty tmpfs
		}},
		{"id-numeric", "2000:3000", false, []string{"uid=2000 gid=3000 groups=[] cwd=/work/dir hostname=id-numeric", "env:HOME=/"}},
		{"id-root-ro", "root", true, []string{
			"uid=0 gid=0 groups=[] cwd=/work/dir hostname=id-root-ro", "env:HOME=/root",
			"write /probe: open /probe: read-only file system",
			"write /tmp/probe: open /tmp/probe: read-only file system",
			"write /dev/shm/probe: ok",
		}},
		{"id-root-rw", "0", false, []string{"write /probe: ok"}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			s := imageSpec(tc.id, img, "id")
			s.Image.User, s.Image.ReadOnlyRoot = tc.user, tc.ro
			s.Env = []string{"SHARED=spec", "SPEC_VAR=1"}
			h, err := d.Start(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if st := wait(t, h); st.Code != 0 {
				t.Fatalf("status %+v; stderr %q", st, logOf(d, tc.id, true))
			}
			out := logOf(d, tc.id, false)
			for _, w := range tc.want {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestStopGrace(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	h, err := d.Start(context.Background(), imageSpec("term", img, "term"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handler to be set", func() bool { return strings.Contains(logOf(d, "term", false), "waiting") })
	st, err := h.Stop(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 0 || st.Reason != "stopped (exited with code 0)" || !strings.Contains(logOf(d, "term", false), "got SIGTERM") {
		t.Errorf("status %+v, log %q: want a clean exit on SIGTERM", st, logOf(d, "term", false))
	}
	// A program that ignores SIGTERM is killed after grace.
	h, err = d.Start(context.Background(), imageSpec("sleeper", img, "ignoreterm"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGTERM to be ignored", func() bool { return strings.Contains(logOf(d, "sleeper", false), "sleeping") })
	t0 := time.Now()
	st, err = h.Stop(context.Background(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if st.Signal != "SIGKILL" || st.Reason != "stopped (killed by SIGKILL)" || time.Since(t0) < 200*time.Millisecond {
		t.Errorf("status %+v after %v", st, time.Since(t0))
	}
	if again, _ := h.Stop(context.Background(), 0); again != st {
		t.Errorf("second Stop = %+v, want %+v", again, st)
	}
	if err := h.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after the end = %v", err)
	}
}

// TestRemoveCleansUp: after Remove nothing of the depot is left on the node: no
// bundle, mount, network namespace, veth, lease, cgroup or runc state.
func TestRemoveCleansUp(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	s := imageSpec("clean", img, "sleep")
	s.Memory = 64 << 20
	h, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	hh := h.(*handle)
	ep := *hh.rec.Endpoint
	rootfs := filepath.Join(d.depots.Dir("clean"), rootfsDir)
	if !mounted(rootfs) {
		t.Errorf("root filesystem %s is not mounted", rootfs)
	}
	if err := d.Remove("clean"); !errors.Is(err, driver.ErrRunning) {
		t.Errorf("Remove of a running depot = %v, want ErrRunning", err)
	}
	if _, err := h.Stop(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("clean"); err != nil {
		t.Fatal(err)
	}
	o, e := d.Logs("clean")
	for _, p := range []string{d.depots.Dir("clean"), ep.NetNS, ep.Lease, filepath.Join(d.runcRoot, "clean"), o, e,
		filepath.Join(d.Cgroups().Memory, d.cfg.CgroupParent, "clean")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is left after Remove", p)
		}
	}
	if _, err := net.InterfaceByName(ep.HostVeth); err == nil {
		t.Errorf("veth %s is left after Remove", ep.HostVeth)
	}
	if err := d.Remove("clean"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	// The image stays unpacked for the next depot, until asked to go.
	if err := d.RemoveImage(img); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.images.path(img)); err == nil {
		t.Error("RemoveImage left the unpacked image")
	}
}

func TestBadSpecs(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	noCmd := store.add(depot.ImageConfig{}, appLayer(t))
	d := newDriver(t, store)
	missing := depot.Digest("sha256:" + strings.Repeat("ab", 32))
	for _, tc := range []struct {
		name string
		spec driver.Spec
		want error
		text string
	}{
		{"no image", driver.Spec{ID: "bad-1", Command: "x"}, driver.ErrBadSpec, "spec.image"},
		{"bad digest", driver.Spec{ID: "bad-2", Command: "x", Image: &driver.ImageSpec{Digest: "latest"}}, driver.ErrBadSpec, "digest"},
		{"unknown image", imageSpec("bad-3", missing), driver.ErrCommandNotFound, "not in the node's depot store"},
		{"nothing to run", imageSpec("bad-4", noCmd), driver.ErrBadSpec, "nothing to run"},
		{"unknown user", func() driver.Spec { s := imageSpec("bad-5", img); s.Image.User = "nobody"; return s }(), driver.ErrBadSpec, `no user "nobody"`},
		{"relative dir", func() driver.Spec { s := imageSpec("bad-6", img); s.Image.WorkingDir = "rel"; return s }(), driver.ErrBadSpec, "workingDir"},
		{"missing program", func() driver.Spec { s := imageSpec("bad-7", img); s.Image.Command = []string{"/nope"}; return s }(), driver.ErrCommandNotFound, "/nope"},
		{"bad id", imageSpec("Bad_ID", img), driver.ErrBadSpec, "spec.id"},
		{"same host port", func() driver.Spec {
			s := imageSpec("bad-8", img)
			s.Ports = map[string]driver.PortMapping{"a": {Host: 20001, Container: 80}, "b": {Host: 20001, Container: 81}}
			return s
		}(), driver.ErrBadSpec, "host port 20001/tcp"},
		{"missing mount source", func() driver.Spec {
			s := imageSpec("bad-9", img)
			s.Mounts = []driver.Mount{{Source: "/nonexistent/qnet/app.conf", Target: "/etc/app.conf", ReadOnly: true}}
			return s
		}(), driver.ErrBadSpec, "spec.mounts[0].source"},
		{"relative mount target", func() driver.Spec {
			s := imageSpec("bad-10", img)
			s.Mounts = []driver.Mount{{Source: "/etc/hostname", Target: "etc/app.conf"}}
			return s
		}(), driver.ErrBadSpec, "spec.mounts[0].target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Start(context.Background(), tc.spec)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Start = %v; want %v mentioning %q", err, tc.want, tc.text)
			}
			// A failed start leaves nothing behind.
			if _, err := os.Stat(d.depots.Dir(tc.spec.ID)); err == nil {
				t.Errorf("bundle of %s left after a failed start", tc.spec.ID)
			}
		})
	}
	// A port the node already uses fails the start, by name.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := imageSpec("bad-port", img)
	s.Ports = map[string]driver.PortMapping{"http": {Host: ln.Addr().(*net.TCPAddr).Port, Container: 8080}}
	if _, err := d.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("host port %d", s.Ports["http"].Host)) {
		t.Errorf("Start on a taken port = %v", err)
	}
	if _, err := os.Stat(d.depots.Dir("bad-port")); err == nil {
		t.Error("bundle left after a failed start")
	}
}

// TestRecover: a second driver on the same directory (a restarted agent) re-adopts the
// running container without starting it again, reports the one that ended meanwhile,
// and cleans up after a start cut short.
func TestRecover(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	dir := t.TempDir()
	d1 := newDriverAt(t, dir, store)
	port := freePort(t)
	s := imageSpec("keep", img)
	s.Ports = map[string]driver.PortMapping{"http": {Host: port, Container: 8080}}
	s.Meta = map[string]string{"service": "web"}
	running, err := d1.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	ended, err := d1.Start(context.Background(), imageSpec("ended", img, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	get(t, fmt.Sprintf("http://127.0.0.1:%d/", port))
	// The agent goes away; the depots do not.
	d1.Close()
	d1.depots, _ = depots.New[*handle](d1.depots.Root(), nil) // d2 owns them now
	syscall.Kill(ended.PID(), syscall.SIGKILL)
	waitFor(t, "the killed container's shim to end", func() bool {
		return !proc.Alive(ended.PID(), 0) && statefile.Exists(filepath.Join(dir, "shims", "ended", "exit.json"))
	})
	// A bundle whose start never got far: no record.
	os.Mkdir(filepath.Join(dir, "depots", "half"), 0o700)

	d2 := newDriverAt(t, dir, store)
	hs, err := d2.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]driver.Handle{}
	for _, h := range hs {
		byID[h.ID()] = h
	}
	if len(hs) != 2 || byID["keep"] == nil || byID["ended"] == nil {
		t.Fatalf("recovered %v, want keep and ended", hs)
	}
	k := byID["keep"]
	if k.PID() != running.PID() || k.Spec().Meta["service"] != "web" || k.Spec().Env != nil {
		t.Errorf("recovered keep: pid %d (want %d), spec %+v", k.PID(), running.PID(), k.Spec())
	}
	if st, err := k.Wait(expired()); err == nil {
		t.Errorf("recovered running depot has ended: %+v", st)
	}
	if body := get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); body != "hello from keep\n" {
		t.Errorf("after the restart the port answers %q", body)
	}
	if st := wait(t, byID["ended"]); st.Signal != "SIGKILL" {
		t.Errorf("depot that ended meanwhile: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "depots", "half")); err == nil {
		t.Error("the half-started depot's bundle is left")
	}
	// Recover again returns the same handles; Start of a recovered ID is refused.
	again, _ := d2.Recover(context.Background())
	if len(again) != 2 {
		t.Errorf("second Recover = %d handles", len(again))
	}
	if _, err := d2.Start(context.Background(), s); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Start of a running recovered depot = %v, want ErrExists", err)
	}
	// The re-adopted depot is stopped and its end seen by the new driver.
	st, err := k.Stop(context.Background(), 0)
	if err != nil || st.Signal != "SIGKILL" || !strings.HasPrefix(st.Reason, "stopped") {
		t.Errorf("Stop of the recovered depot = %+v, %v", st, err)
	}
}

// TestLostRuntime: runc killed under a running container leaves it without a
// supervisor: the driver kills the container and reports the depot lost.
func TestLostRuntime(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	h, err := d.Start(context.Background(), imageSpec("lost", img, "sleep"))
	if err != nil {
		t.Fatal(err)
	}
	hh := h.(*handle)
	runcPID := hh.eh.PID()
	if err := syscall.Kill(runcPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := wait(t, h)
	if !st.Lost() || st.Code != -1 {
		t.Errorf("status = %+v, want lost", st)
	}
	if proc.Alive(hh.rec.PID, hh.rec.PIDStart) {
		t.Error("the container runs on after its runtime was killed")
	}
}

// TestUnpackOnce: depots of one image share one unpacked root filesystem, and what one
// writes does not reach the other.
func TestUnpackOnce(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	// Both at once: the second waits for the first's unpack rather than doing its own.
	hs := make([]driver.Handle, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, id := range []string{"share-1", "share-2"} {
		wg.Go(func() { hs[i], errs[i] = d.Start(context.Background(), imageSpec(id, img, "id")) })
	}
	wg.Wait()
	for i, h := range hs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		wait(t, h)
	}
	if store.reads != 1 {
		t.Errorf("the layer was read %d times, want once", store.reads)
	}
	// Each wrote /probe in its own upper layer; the image has none.
	if _, err := os.Stat(filepath.Join(d.images.path(img), "rootfs", "probe")); err == nil {
		t.Error("a depot's write reached the shared image")
	}
	if _, err := os.Stat(filepath.Join(d.depots.Dir("share-1"), upperDir, "probe")); err != nil {
		t.Errorf("share-1's write is not in its upper layer: %v", err)
	}
}

// TestCopyRootfs: without overlayfs, the depot gets a copy of the image.
func TestCopyRootfs(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store, func(c *Config) { c.Rootfs = RootfsCopy })
	h, err := d.Start(context.Background(), imageSpec("copy", img, "id"))
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 0 || !strings.Contains(logOf(d, "copy", false), "write /probe: ok") {
		t.Errorf("status %+v, log %q", st, logOf(d, "copy", false))
	}
	if h.(*handle).rec.Rootfs != RootfsCopy {
		t.Errorf("rootfs mode %q", h.(*handle).rec.Rootfs)
	}
}

func TestHelperArgs(t *testing.T) {
	p, err := parsePortArg("8080=10.88.0.2:80")
	if err != nil || p.host != 8080 || p.addr != "10.88.0.2" || p.container != 80 || p.udp {
		t.Errorf("parsePortArg = %+v, %v", p, err)
	}
	if p, err := parsePortArg("53/udp=10.88.0.2:53"); err != nil || !p.udp {
		t.Errorf("udp: %+v, %v", p, err)
	}
	for _, bad := range []string{"8080", "x=10.0.0.1:80", "8080=10.0.0.1", "8080=host:80", "0=10.0.0.1:80", "8080/sctp=10.0.0.1:80", "8080=10.0.0.1:70000"} {
		if _, err := parsePortArg(bad); err == nil {
			t.Errorf("parsePortArg(%q) accepted", bad)
		}
	}
}

// TestBadLayer: a layer the store finds corrupt (reported at Close, after the tar was
// read) fails the start, names the layer, and leaves no unpacked image to be reused.
func TestBadLayer(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	layer := appLayer(t)
	img := store.add(depot.ImageConfig{Entrypoint: []string{"/app"}}, layer)
	store.closeErr[depot.FromBytes(layer)] = fmt.Errorf("layer: %w", depot.ErrDigestMismatch)
	d := newDriver(t, store)
	_, err := d.Start(context.Background(), imageSpec("bad-layer", img, "id"))
	if !errors.Is(err, depot.ErrDigestMismatch) || !strings.Contains(err.Error(), string(depot.FromBytes(layer))) {
		t.Fatalf("Start = %v, want a digest mismatch naming the layer", err)
	}
	if _, err := os.Stat(d.images.path(img)); err == nil {
		t.Error("a corrupt image was kept unpacked")
	}
	if entries, _ := os.ReadDir(filepath.Dir(d.images.path(img))); len(entries) != 0 {
		t.Errorf("image cache holds %d entries after a failed unpack", len(entries))
	}
	// Once the store has a good copy, the image runs.
	delete(store.closeErr, depot.FromBytes(layer))
	h, err := d.Start(context.Background(), imageSpec("bad-layer", img, "exit", "0"))
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestMountsAndSecretEnv checks that a container sees a Spec.Mounts file at its target,
// read-only when asked, and its environment; and that the environment, which may hold
// secrets, is on no file under the driver's directory (the node's disk), only on the
// bundle's own tmpfs while runc reads it: runc, which keeps the bundle as its working
// directory, is seen there on a tmpfs other than the depot directory's filesystem.
// TestPrivateMountForImageUser: a secret file (mode 0400, the node's) is readable by a
// container that runs as another user only when its mount is private, which gives the
// file to that user; a mount that is not private stays the node's, and unreadable.
func TestPrivateMountForImageUser(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriverAt(t, t.TempDir(), store)
	for _, private := range []bool{true, false} {
		src := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(src, []byte("s3cret"), 0o400); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("private-%v", private)
		s := imageSpec(id, img, "inputs", "TOKEN", "/run/secrets/token")
		s.Image.User = "1000:1000"
		s.Mounts = []driver.Mount{{Source: src, Target: "/run/secrets/token", ReadOnly: true, Private: private}}
		if _, err := d.Start(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the container's output", func() bool { return strings.Contains(logOf(d, id, false), "sleeping\n") })
		out := logOf(d, id, false)
		want := `file /run/secrets/token: "s3cret" <nil>`
		if !private {
			want = "permission denied"
		}
		if !strings.Contains(out, want) {
			t.Errorf("private=%v: output lacks %q:\n%s", private, want, out)
		}
		var st unix.Stat_t
		if err := unix.Stat(src, &st); err != nil {
			t.Fatal(err)
		}
		if owner := st.Uid == 1000 && st.Gid == 1000; owner != private || st.Mode&0o777 != 0o400 {
			t.Errorf("private=%v: the node's file is owned by %d:%d, mode %o", private, st.Uid, st.Gid, st.Mode&0o777)
		}
	}
}

func TestMountsAndSecretEnv(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	dir := t.TempDir()
	d := newDriverAt(t, dir, store)
	src := filepath.Join(t.TempDir(), "app.conf")
	if err := os.WriteFile(src, []byte("listen 8080"), 0o644); err != nil {
		t.Fatal(err)
	}
	canary := "canary-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-secret"
	s := imageSpec("mounts", img, "inputs", "TOKEN", "/etc/app/app.conf")
	s.Env = []string{"TOKEN=" + canary}
	s.Mounts = []driver.Mount{{Source: src, Target: "/etc/app/app.conf", ReadOnly: true}}
	h, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container's output", func() bool { return strings.Contains(logOf(d, "mounts", false), "sleeping\n") })
	out := logOf(d, "mounts", false)
	for _, w := range []string{"env TOKEN=" + canary, `file /etc/app/app.conf: "listen 8080" <nil>`, "write refused"} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if data, _ := os.ReadFile(src); string(data) != "listen 8080" {
		t.Errorf("the node's file became %q through a read-only mount", data)
	}

	// runc's working directory is the bundle: a tmpfs of its own.
	runc := h.(*handle).eh.PID()
	var fs unix.Statfs_t
	var cwd, depotDir unix.Stat_t
	if err := unix.Statfs(fmt.Sprintf("/proc/%d/cwd", runc), &fs); err != nil {
		t.Fatalf("runc's working directory: %v", err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/cwd", runc), &cwd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(d.depots.Dir("mounts"), &depotDir); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.TMPFS_MAGIC || cwd.Dev == depotDir.Dev {
		t.Errorf("runc's bundle is on filesystem type %#x, device %d (the depot directory's is %d): want a tmpfs of its own", fs.Type, cwd.Dev, depotDir.Dev)
	}
	if _, err := os.Stat(filepath.Join(d.depots.Dir("mounts"), bundleDir, configFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config.json is still there once the container runs: %v", err)
	}

	search := func(when string) {
		t.Helper()
		filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			if strings.HasSuffix(p, "stdout.log") || strings.HasPrefix(p, filepath.Join(dir, "images")) {
				return nil // what the container printed itself; the image
			}
			if data, err := os.ReadFile(p); err == nil && bytes.Contains(data, []byte(canary)) {
				t.Errorf("%s: %s holds the environment's secret", when, p)
			}
			return nil
		})
	}
	search("running")
	if _, err := h.Stop(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	search("stopped")
}

// fakeServices offers one service port in each container's namespace, as the node
// does, and records the offers and withdrawals.
type fakeServices struct {
	mu        sync.Mutex
	offered   []string
	withdrawn []string
	lns       map[string]net.Listener
}

func (f *fakeServices) Offer(ctx context.Context, id string, ep network.Endpoint) (Offer, error) {
	var ln net.Listener
	if err := network.InNamespace(ep.NetNS, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.64.9.9:80")
		return err
	}); err != nil {
		return Offer{}, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "service for %s\n", id)
			c.Close()
		}
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offered = append(f.offered, id)
	f.lns[id] = ln
	return Offer{DNS: netip.MustParseAddrPort("127.0.0.11:53"), Search: []string{"test.qnet"}}, nil
}

func (f *fakeServices) Withdraw(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ln := f.lns[id]; ln != nil {
		ln.Close()
		delete(f.lns, id)
		f.withdrawn = append(f.withdrawn, id)
	}
}

// TestServicesOffered runs a container with the node's services offered in its
// network: they are there before its program runs, it is told the DNS server in
// /etc/resolv.conf and $QNET_DNS (in place of the node's own address), and the
// services are withdrawn when it ends.
func TestServicesOffered(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	img := appImage(t, store)
	d := newDriver(t, store)
	sv := &fakeServices{lns: map[string]net.Listener{}}
	d.SetServices(sv)
	s := imageSpec("svc-net", img, "net", "127.64.9.9:80")
	s.Env = []string{"QNET_DNS=127.0.0.1:7753"}
	h, err := d.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if st := wait(t, h); st.Code != 0 {
		t.Fatalf("status %+v; stdout %q; stderr %q", st, logOf(d, "svc-net", false), logOf(d, "svc-net", true))
	}
	out := logOf(d, "svc-net", false)
	for _, want := range []string{
		"QNET_DNS=127.0.0.11:53\n",
		`nameserver 127.0.0.11\nsearch test.qnet\n`,
		`answer "service for svc-net\n" <nil>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if !slices.Equal(sv.offered, []string{"svc-net"}) || !slices.Equal(sv.withdrawn, []string{"svc-net"}) {
		t.Errorf("offered %v, withdrawn %v; want svc-net once each", sv.offered, sv.withdrawn)
	}
}
