//go:build linux

package oci

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver"
	"qnet.dev/qnet/driver/exec/shim"
	"qnet.dev/qnet/driver/internal/drivertest"
	"qnet.dev/qnet/driver/oci/network"
)

// The test binary plays three parts: the exec driver's shim (QNET_TEST_SHIM=1), the
// port helper (QNET_TEST_OCIRUN=1), as the qnet binary's "shim" and "oci-run"
// commands will, and the tests.
var (
	testParent = fmt.Sprintf("qnet-oci-test-%d", os.Getpid())
	testBridge = fmt.Sprintf("qo%x", os.Getpid())
	testSubnet = netip.MustParsePrefix(fmt.Sprintf("10.251.%d.0/24", os.Getpid()%256))
	// testLeases is shared by every driver of the test process: they share the bridge
	// and subnet, so they must share the leases.
	testLeases string
	// parents numbers the drivers' cgroup parents, testParent-N.
	parents atomic.Int64
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv("QNET_TEST_SHIM") == "1":
		os.Exit(shim.Main(os.Args[2:])) // os.Args: [binary, "shim", ...]
	case os.Getenv("QNET_TEST_OCIRUN") == "1":
		os.Exit(HelperMain(os.Args[2:])) // os.Args: [binary, "oci-run", ...]
	}
	dir, err := os.MkdirTemp("", "qnet-oci-leases-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testLeases = dir
	code := m.Run()
	os.RemoveAll(dir)
	if appDir != "" {
		os.RemoveAll(appDir)
	}
	exec.Command("ip", "link", "del", testBridge).Run()
	// Drivers remove their parents when they close; runc makes a parent in every
	// hierarchy it uses, and a test that failed may leave one.
	paths, _ := filepath.Glob("/sys/fs/cgroup/*/" + testParent + "-*")
	for _, p := range paths {
		os.Remove(p)
	}
	os.Exit(code)
}

// needRunc skips the test unless it can run containers: root and runc.
func needRunc(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the oci driver needs root (namespaces, overlay mounts, cgroups); run the tests as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (apt-get install runc)")
	}
}

// appSource is the test image's one program: a static Go server with a few modes.
const appSource = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	mode := "serve"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "serve":
		port := os.Getenv("APP_PORT")
		if port == "" {
			port = "8080"
		}
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s\n", host) })
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening on", port)
		fmt.Fprintln(os.Stderr, "stderr works")
		go udpEcho(port)
		http.Serve(ln, nil)
	case "net":
		// net ADDR: print the DNS settings, then what ADDR answers.
		conf, err := os.ReadFile("/etc/resolv.conf")
		fmt.Printf("QNET_DNS=%s\nresolv.conf %q %v\n", os.Getenv("QNET_DNS"), conf, err)
		c, err := net.DialTimeout("tcp", os.Args[2], 5*time.Second)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(1)
		}
		line := make([]byte, 64)
		n, err := c.Read(line)
		fmt.Printf("answer %q %v\n", line[:n], err)
	case "exit":
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Println("exiting with", code)
		fmt.Fprintln(os.Stderr, "to stderr")
		os.Exit(code)
	case "id":
		wd, _ := os.Getwd()
		host, _ := os.Hostname()
		groups, _ := os.Getgroups()
		fmt.Printf("uid=%d gid=%d groups=%v cwd=%s hostname=%s\n", os.Getuid(), os.Getgid(), groups, wd, host)
		for _, e := range os.Environ() {
			fmt.Println("env:" + e)
		}
		for _, p := range []string{"/probe", "/tmp/probe", "/dev/shm/probe"} {
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				fmt.Printf("write %s: %v\n", p, err)
			} else {
				fmt.Printf("write %s: ok\n", p)
			}
		}
		for _, p := range []string{"/proc/keys", "/dev/null", "/sys/firmware", "/gone", "/data/a", "/data/c"} {
			fi, err := os.Stat(p)
			if err != nil {
				fmt.Printf("stat %s: %v\n", p, err)
			} else {
				fmt.Printf("stat %s: %v %d\n", p, fi.Mode(), fi.Size())
			}
		}
	case "inputs":
		// inputs VAR FILE: print the variable and the file, try to change the file,
		// then wait to be stopped.
		fmt.Printf("env %s=%s\n", os.Args[2], os.Getenv(os.Args[2]))
		data, err := os.ReadFile(os.Args[3])
		fmt.Printf("file %s: %q %v\n", os.Args[3], data, err)
		if err := os.WriteFile(os.Args[3], []byte("changed"), 0o644); err != nil {
			fmt.Println("write refused")
		}
		fmt.Println("sleeping")
		for {
			time.Sleep(time.Hour)
		}
	case "sleep", "ignoreterm":
		if mode == "ignoreterm" {
			signal.Ignore(syscall.SIGTERM)
		}
		fmt.Println("sleeping")
		for {
			time.Sleep(time.Hour)
		}
	case "term":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("waiting for SIGTERM")
		<-c
		fmt.Println("got SIGTERM")
		os.Exit(0)
	case "alloc":
		var keep [][]byte
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(i)
			}
			keep = append(keep, b)
			if i%16 == 0 {
				fmt.Println("allocated", len(keep), "MiB")
			}
		}
	}
}

func udpEcho(port string) {
	pc, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(append([]byte("udp echo: "), buf[:n]...), from)
	}
}
`

var (
	appOnce sync.Once
	appDir  string
	appBin  string
	appErr  error
)

// app returns the test program, built once per test process (static, so it needs
// nothing from the image).
func app(t testing.TB) string {
	t.Helper()
	appOnce.Do(func() {
		appDir, appErr = os.MkdirTemp("", "qnet-oci-app-")
		if appErr != nil {
			return
		}
		os.WriteFile(filepath.Join(appDir, "main.go"), []byte(appSource), 0o644)
		os.WriteFile(filepath.Join(appDir, "go.mod"), []byte("module app\n\ngo 1.22\n"), 0o644)
		appBin = filepath.Join(appDir, "app")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", appBin, ".")
		cmd.Dir = appDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("build the test program: %v\n%s", err, out)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	return appBin
}

// tarEntry is one entry of a test layer.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

func makeLayer(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: time.Unix(1700000000, 0)}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// appLayer is the test image's one layer: the program at /app, users and groups, and
// the usual directories.
func appLayer(t testing.TB) []byte {
	bin, err := os.ReadFile(app(t))
	if err != nil {
		t.Fatal(err)
	}
	return makeLayer(t,
		tarEntry{name: "app", typ: tar.TypeReg, body: string(bin), mode: 0o755},
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644,
			body: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"},
		tarEntry{name: "etc/group", typ: tar.TypeReg, mode: 0o644, body: "root:x:0:\napp:x:1000:\nstaff:x:50:app\n"},
		tarEntry{name: "home/app/", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		tarEntry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		tarEntry{name: "root/", typ: tar.TypeDir, mode: 0o700},
		tarEntry{name: "dev/sda", typ: tar.TypeBlock, mode: 0o600},
	)
}

// fakeStore is an in-memory depot store of images made in the tests.
type fakeStore struct {
	mu     sync.Mutex
	images map[depot.Digest]*depot.Image
	layers map[depot.Digest][]byte
	reads  int
	// closeErr, when set for a layer, is what its reader's Close returns, as the
	// depot store reports a layer whose bytes do not hash to its DiffID.
	closeErr map[depot.Digest]error
}

func newFakeStore() *fakeStore {
	return &fakeStore{images: map[depot.Digest]*depot.Image{}, layers: map[depot.Digest][]byte{}, closeErr: map[depot.Digest]error{}}
}

func (f *fakeStore) add(cfg depot.ImageConfig, layers ...[]byte) depot.Digest {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := &depot.Image{Kind: depot.KindOCI, Config: cfg, OS: "linux", Arch: runtime.GOARCH}
	for _, l := range layers {
		d := depot.FromBytes(l)
		f.layers[d] = l
		img.Layers = append(img.Layers, depot.Layer{Digest: d, Size: int64(len(l)), MediaType: "application/vnd.oci.image.layer.v1.tar"})
	}
	data, _ := json.Marshal(img)
	img.Digest = depot.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(data)))
	f.images[img.Digest] = img
	return img.Digest
}

func (f *fakeStore) Image(d depot.Digest) (*depot.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[d]
	if !ok {
		return nil, fmt.Errorf("image %s: %w", d, depot.ErrNotFound)
	}
	c := *img
	return &c, nil
}

func (f *fakeStore) LayerReader(l depot.Layer) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.layers[l.Digest]
	if !ok {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, depot.ErrNotFound)
	}
	f.reads++
	return layerReader{bytes.NewReader(data), f.closeErr[l.Digest]}, nil
}

type layerReader struct {
	io.Reader
	closeErr error
}

func (r layerReader) Close() error { return r.closeErr }

// appImage adds the test image to store and returns its digest; cfg edits its config.
func appImage(t testing.TB, store *fakeStore, edit ...func(*depot.ImageConfig)) depot.Digest {
	cfg := depot.ImageConfig{Entrypoint: []string{"/app"}, Cmd: []string{"serve"}, Env: []string{"PATH=/usr/bin:/bin", "IMAGE_VAR=from-image", "SHARED=image"}}
	for _, e := range edit {
		e(&cfg)
	}
	return store.add(cfg, appLayer(t))
}

// newDriver returns a driver on a fresh directory with the test binary as shim and
// helper; every depot left when the test ends is stopped and removed.
func newDriver(t testing.TB, store Images, edit ...func(*Config)) *Driver {
	t.Helper()
	dir := t.TempDir()
	return newDriverAt(t, dir, store, edit...)
}

func newDriverAt(t testing.TB, dir string, store Images, edit ...func(*Config)) *Driver {
	t.Helper()
	needRunc(t)
	return drivertest.Open(t, New, testConfig(dir, store), edit, func(d *Driver) []*handle { return d.depots.Handles() })
}

func testConfig(dir string, store Images) Config {
	return Config{
		Dir: dir, Images: store,
		ShimBinary: os.Args[0], ShimEnv: []string{"QNET_TEST_SHIM=1", drivertest.NoRaceExitSleep},
		HelperBinary: os.Args[0], HelperEnv: []string{"QNET_TEST_OCIRUN=1", drivertest.NoRaceExitSleep},
		// A parent of its own: a driver's Close removes its parent when it is empty,
		// which must not race with another test's runc making a group in it.
		CgroupParent: fmt.Sprintf("%s-%d", testParent, parents.Add(1)),
		Network: &network.Config{
			Bridge: testBridge, Subnet: testSubnet,
			NetnsDir: filepath.Join(dir, "netns"), LeaseDir: testLeases,
		},
		Logger: slog.New(slog.DiscardHandler),
	}
}

// freePort returns a TCP port free on the host now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var (
	wait    = drivertest.Wait
	waitFor = drivertest.WaitFor
)

// logOf returns a depot's stdout or stderr log so far.
func logOf(d *Driver, id string, stderr bool) string {
	o, e := d.Logs(id)
	p := o
	if stderr {
		p = e
	}
	data, _ := os.ReadFile(p)
	return string(data)
}

// imageSpec returns a spec running image with the given args.
func imageSpec(id string, image depot.Digest, args ...string) driver.Spec {
	return driver.Spec{ID: id, Command: "image:" + string(image), Image: &driver.ImageSpec{Digest: string(image), Args: args}}
}

var errNotYet = errors.New("not yet")
