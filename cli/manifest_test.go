package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"qnet.dev/qnet/examples"
)

const badManifest = `apiVersion: qnet/v1
kind: Service
metadata:
  name: Web_1
spec:
  depot:
    exec:
      command: ./web
  replicas: -2
  colour: blue
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestManifestValidateGood(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFile(t, dir, "hello.yaml", string(examples.Hello))
	code, out, errOut := run(t, "manifest", "validate", good)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := good + ": 1 service(s) valid (hello)\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	// No context file is read or needed.
	if _, err := os.Stat(filepath.Join(dir, "config.yaml")); !os.IsNotExist(err) {
		t.Errorf("validate touched the context file")
	}
}

func TestManifestValidateBad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeFile(t, dir, "web.yaml", badManifest)
	code, out, errOut := run(t, "manifest", "validate", bad)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	// Every problem at once, each as file:line:col: field: message.
	for _, want := range []string{
		bad + ":4:9: metadata.name:",
		bad + ":9:13: spec.replicas:",
		bad + ":10:3:",
		"colour",
		"Error: 1 of 1 path(s) hold invalid manifests",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Count(errOut, "Error:") != 1 {
		t.Errorf("want one Error: line:\n%s", errOut)
	}
	if strings.Contains(errOut, "Usage:") {
		t.Errorf("a bad manifest is not a usage mistake, yet usage was shown:\n%s", errOut)
	}
}

func TestManifestValidateDirAndMissing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", string(examples.Hello))
	writeFile(t, dir, "b.yml", strings.Replace(string(examples.Hello), "name: hello", "name: other", 1))
	writeFile(t, dir, "notes.txt", "not a manifest")
	code, out, errOut := run(t, "manifest", "validate", dir, filepath.Join(dir, "missing.yaml"))
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if want := dir + ": 2 service(s) valid (hello, other)\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if !strings.Contains(errOut, "missing.yaml") || !strings.Contains(errOut, "1 of 2 path(s)") {
		t.Errorf("stderr:\n%s", errOut)
	}
}

func TestManifestSchema(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "manifest", "schema")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if !strings.Contains(out, "replicas") {
		t.Errorf("schema does not describe spec.replicas")
	}
}

func TestApplyBadManifestSendsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeFile(t, dir, "web.yaml", badManifest)
	// The context names a server that is not there: apply must fail before reaching it.
	cfg := writeFile(t, dir, "config.yaml", "current: x\ncontexts:\n  x:\n    server: https://127.0.0.1:1\n    token: t\n    operatorKey: \"\"\n    serverKey: \"\"\n")
	code, out, errOut := run(t, "--config", cfg, "apply", "-f", bad)
	if code != 1 || out != "" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, bad+":9:13: spec.replicas:") || !strings.Contains(errOut, "Error: "+bad+": 3 problem(s) in the manifests; nothing was applied") {
		t.Errorf("stderr:\n%s", errOut)
	}
	if strings.Contains(errOut, "reach qnet API") {
		t.Errorf("apply contacted the node despite a bad manifest:\n%s", errOut)
	}
}
