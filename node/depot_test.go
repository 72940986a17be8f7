package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/manifest"
	"qnet.dev/qnet/qnettest"
)

// staticServer builds a small static HTTP server that answers "image <hostname>" on
// $PORT, as a one-binary image would carry it.
func staticServer(t *testing.T) string {
	return buildStatic(t, "imgsrv", `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "image %s\n", host) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`)
}

// needContainers skips a test that runs containers where they cannot run: not root,
// or no runc (apt-get install runc).
func needContainers(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containers need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (apt-get install runc)")
	}
}

// TestImageDepotFromPeer builds an image on one node and runs it on another: the node
// that runs it fetches the image from its peer through the mesh, and the container
// answers on the node's port.
func TestImageDepotFromPeer(t *testing.T) {
	needContainers(t)
	bin := staticServer(t)
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{})
	ctx := context.Background()
	img, err := nodes[0].Client.BuildImage(ctx, bin, "imgsrv:1", depot.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Only the second node may run it, so it must fetch it.
	svcs, err := manifest.Decode("img.yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: imgsrv}
spec:
  depot: {image: imgsrv:1}
  resources: {cpu: 100m, memory: 64Mi}
  ports: [{name: http, port: 8080}]
  health:
    readiness: {http: /, interval: 200ms}
  placement: {constraints: ["id == %s"]}
`, nodes[1].ID()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := nodes[0].Client.Apply(ctx, svcs)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := nodes[0].Client.Service(ctx, "imgsrv")
	if err != nil || applied.Spec.Spec.Depot.Image.Digest != string(img.Digest) {
		t.Fatalf("apply did not pin the image's digest: %v %+v", err, res)
	}
	waitReady(t, nodes[0], "imgsrv")
	d := depotOf(t, nodes[0], "imgsrv")
	if d.Node != nodes[1].ID() {
		t.Fatalf("depot on %s, want %s", d.Node, nodes[1].ID())
	}
	code, body := get(t, d.Addrs["http"], "/")
	if code != 200 || !strings.Contains(body, "image "+d.ID) {
		t.Fatalf("container answered %d %q", code, body)
	}
	if !nodes[1].Depots().Has(img.Digest) {
		t.Fatal("the running node does not hold the image")
	}
	if nodes[0].Swarm().Served() == 0 {
		t.Fatal("the image did not come from the peer")
	}
}

// wasmServer builds a small WASI HTTP server (GOOS=wasip1) that answers "wasm
// <depot ID>" on the listener the wasm driver preopens for $PORT (file descriptor 4).
func wasmServer(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	if _, err := os.Stat(gobin); err != nil {
		t.Skip("no Go toolchain to build the test module")
	}
	dir := t.TempDir()
	src := `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
)

func main() {
	// Non-blocking, so the single-threaded module parks in poll_oneoff, not in accept.
	if err := syscall.SetNonblock(4, true); err != nil {
		panic(err)
	}
	ln, err := net.FileListener(os.NewFile(4, "http"))
	if err != nil {
		panic(err)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "wasm %s\n", os.Getenv("QNET_DEPOT_ID"))
	})
	http.Serve(ln, nil)
}
`
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module wasmsrv\ngo 1.22\n"), 0o644)
	out := filepath.Join(dir, "wasmsrv.wasm")
	cmd := exec.Command(gobin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test module: %v\n%s", err, b)
	}
	return out
}

// TestWasmDepotFromPeer applies a WebAssembly module from a file: apply imports it into
// one node's store, the node that must run it fetches it from that peer, and the wasm
// driver serves HTTP from it on the node's port.
func TestWasmDepotFromPeer(t *testing.T) {
	mod := wasmServer(t)
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{})
	ctx := context.Background()
	svcs, err := manifest.Decode("wasm.yaml", fmt.Appendf(nil, `apiVersion: qnet/v1
kind: Service
metadata: {name: wasmsrv}
spec:
  depot: {wasm: %s}
  replicas: 2
  resources: {cpu: 100m, memory: 64Mi}
  ports: [{name: http, port: 8080}]
  health:
    readiness: {http: /, interval: 200ms}
  placement: {constraints: ["id == %s"]}
`, mod, nodes[1].ID()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].Client.Apply(ctx, svcs); err != nil {
		t.Fatal(err)
	}
	applied, err := nodes[0].Client.Service(ctx, "wasmsrv")
	if err != nil || !strings.HasPrefix(applied.Spec.Spec.Depot.Wasm.Digest, "sha256:") {
		t.Fatalf("apply did not pin the module's digest: %v", err)
	}
	waitReady(t, nodes[0], "wasmsrv")
	d := depotOf(t, nodes[0], "wasmsrv")
	if d.Node != nodes[1].ID() {
		t.Fatalf("depot on %s, want %s", d.Node, nodes[1].ID())
	}
	code, body := get(t, d.Addrs["http"], "/")
	if code != 200 || !strings.Contains(body, "wasm "+d.ID) {
		t.Fatalf("module answered %d %q", code, body)
	}
	if !nodes[1].Depots().Has(depot.Digest(applied.Spec.Spec.Depot.Wasm.Digest)) {
		t.Fatal("the running node does not hold the module")
	}
	if nodes[0].Swarm().Served() == 0 {
		t.Fatal("the module did not come from the peer")
	}
}
