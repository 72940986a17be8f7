//go:build linux

package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/secret"
)

// inputsServer is a static HTTP server for an image that answers with what its depot
// was given: the SHA-256 of $DB_PASSWORD and of /run/secrets/db-password, and the
// config file /etc/app/app.conf, so the test sees them without their plaintext.
const inputsServer = `package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		file, err := os.ReadFile("/run/secrets/db-password")
		conf, cerr := os.ReadFile("/etc/app/app.conf")
		werr := os.WriteFile("/etc/app/app.conf", []byte("changed"), 0o644)
		fmt.Fprintf(w, "env-sha=%x\nfile-sha=%x %v\nconfig=%s %v\nconfig-writable=%v\n",
			sha256.Sum256([]byte(os.Getenv("DB_PASSWORD"))), sha256.Sum256(file), err, conf, cerr, werr == nil)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// TestSecretsInImageDepot runs an image depot that takes a secret as an environment
// variable and as a file, and a config file: the container sees them at the manifest's
// paths (the files read-only), while the secret's plaintext is in no file of the data
// dir (runc's runtime spec included: it lives on a tmpfs), no log and no ledger block.
func TestSecretsInImageDepot(t *testing.T) {
	needContainers(t)
	bin := buildStatic(t, "inputs", inputsServer)
	canary := "canary" + randomHex(12)
	var logs syncBuffer
	nodes := qnettest.StartNetwork(t, 1, qnettest.Options{Configure: func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	a := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	qnettest.WaitFor(t, 30*time.Second, "the network secret key", func() bool {
		_, ok, _ := a.Store().NetworkKey()
		return ok
	})
	if _, err := a.Client.BuildImage(ctx, bin, "inputs:1", depot.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Client.PutSecret(ctx, "db-password", secret.NewValue("db-password", 0, []byte(canary))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Client.PutConfig(ctx, "app-conf", []byte("greeting=hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Apply(ctx, decode(t, `apiVersion: qnet/v1
kind: Service
metadata: {name: img-inputs}
spec:
  depot: {image: inputs:1}
  resources: {cpu: 100m, memory: 64Mi}
  ports: [{name: http, port: 8080}]
  health:
    readiness: {http: /, interval: 200ms}
  secrets: [{name: db-password, env: DB_PASSWORD, file: /run/secrets/db-password}]
  configs: [{name: app-conf, path: /etc/app/app.conf}]
`)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a, "img-inputs")
	code, body := get(t, depotOf(t, a, "img-inputs").Addrs["http"], "/")
	sum := sha256.Sum256([]byte(canary))
	for _, w := range []string{"env-sha=" + hex.EncodeToString(sum[:]), "file-sha=" + hex.EncodeToString(sum[:]) + " <nil>", "config=greeting=hello <nil>", "config-writable=false"} {
		if code != 200 || !strings.Contains(body, w+"\n") {
			t.Errorf("the container answered %d %q, want %q in it", code, body, w)
		}
	}

	find := func(where string, data []byte) {
		t.Helper()
		for _, form := range qnettest.Encodings([]byte(canary)) {
			if bytes.Contains(data, form) {
				t.Errorf("%s holds the canary (as %q)", where, form)
			}
		}
	}
	files := searchDataDir(t, a.DataDir, find)
	if files < 10 {
		t.Errorf("only %d files searched in %s", files, a.DataDir)
	}
	next, done, err := a.Store().Blocks()
	if err != nil {
		t.Fatal(err)
	}
	for {
		h, data, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		find(fmt.Sprintf("block %d", h), data)
	}
	done()
	if !bytes.Contains(logs.Bytes(), []byte("depot started")) {
		t.Errorf("the node's logs (%d bytes) do not show the depot starting: the log capture is blind", len(logs.Bytes()))
	}
	find("the node's logs", logs.Bytes())
}

// inputsModule is a WASI module that prints what its depot was given: the SHA-256 of
// $DB_PASSWORD and of /run/secrets/db-password, the config file /etc/app/app.conf and
// whether it could change it; then it waits to be stopped.
const inputsModule = `package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"time"
)

func main() {
	file, err := os.ReadFile("/run/secrets/db-password")
	conf, cerr := os.ReadFile("/etc/app/app.conf")
	werr := os.WriteFile("/etc/app/app.conf", []byte("changed"), 0o644)
	fmt.Printf("env-sha=%x\nfile-sha=%x %v\nconfig=%s %v\nconfig-writable=%v\n",
		sha256.Sum256([]byte(os.Getenv("DB_PASSWORD"))), sha256.Sum256(file), err, conf, cerr, werr == nil)
	for {
		time.Sleep(time.Hour)
	}
}
`

// TestSecretsInWasmDepot runs a wasm depot that takes a secret as an environment
// variable and as a file, and a config file: the module reads the files at the
// manifest's paths, and cannot change them.
func TestSecretsInWasmDepot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("secret files need a tmpfs mount: run as root")
	}
	mod := buildStatic(t, "inputs.wasm", inputsModule, "GOOS=wasip1", "GOARCH=wasm")
	canary := "canary" + randomHex(12)
	nodes := qnettest.StartNetwork(t, 1, qnettest.Options{})
	a := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	qnettest.WaitFor(t, 30*time.Second, "the network secret key", func() bool {
		_, ok, _ := a.Store().NetworkKey()
		return ok
	})
	if _, _, err := a.Client.PutSecret(ctx, "db-password", secret.NewValue("db-password", 0, []byte(canary))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Client.PutConfig(ctx, "app-conf", []byte("greeting=hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Apply(ctx, decode(t, fmt.Sprintf(`apiVersion: qnet/v1
kind: Service
metadata: {name: wasm-inputs}
spec:
  depot: {wasm: %s}
  resources: {cpu: 100m, memory: 64Mi}
  secrets: [{name: db-password, env: DB_PASSWORD, file: /run/secrets/db-password}]
  configs: [{name: app-conf, path: /etc/app/app.conf}]
`, mod))); err != nil {
		t.Fatal(err)
	}
	svc, _, _ := a.Store().Service("wasm-inputs")
	sum := sha256.Sum256([]byte(canary))
	waitOutput(t, nodes, "wasm-inputs", svc.Revision, 1, "env-sha="+hex.EncodeToString(sum[:])+"\n",
		"file-sha="+hex.EncodeToString(sum[:])+" <nil>\n", "config=greeting=hello <nil>\n", "config-writable=false\n")
}

// buildStatic builds the Go program src as a static binary named name, with env added
// to the build's environment (GOOS=wasip1 GOARCH=wasm for a WASI module).
func buildStatic(t *testing.T, name, src string, env ...string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	if _, err := os.Stat(gobin); err != nil {
		t.Skip("no Go toolchain to build the test image's program")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(dir, name), ".")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test program: %v\n%s", err, out)
	}
	return filepath.Join(dir, name)
}
