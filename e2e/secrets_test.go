package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsBadInput runs the qnet binary against a node and checks what users get
// wrong about secrets and configs: an oversized secret, a manifest that names a secret
// or config the network does not have, removing what does not exist or what a service
// uses. Each is refused with a clear message and a non-zero exit; the right commands
// work.
func TestSecretsBadInput(t *testing.T) {
	u := newUser(t)
	data := filepath.Join(u.dir, "node")
	addr := freeAddr(t)
	nodeID := initNode(u, data, "e2e-secrets", addr)
	u.killNodeAtCleanup(&nodeID)
	agent := startAgent(u, data, addr)
	defer agent.stop()

	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(u.dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("big", make([]byte, 64<<10+1))
	manifest := write("svc.yaml", []byte(`apiVersion: qnet/v1
kind: Service
metadata: {name: uses-secrets}
spec:
  depot: {exec: {command: sh, args: [-c, "exec sleep 3600"]}}
  replicas: 0
  secrets: [{name: db-password, env: DB_PASSWORD}]
  configs: [{name: app-conf, path: /etc/app.conf}]
`))
	refused := func(want string, args ...string) {
		t.Helper()
		r := u.qnet(args...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("want a non-zero exit and %q\n%s", want, r)
		}
	}
	refused("secret \"db-password\" is 65537 bytes: secret too large; at most 65536 bytes (64 KiB) are allowed", "secret", "put", "db-password", "--from-file", big)
	refused("names secret db-password, config app-conf, which the network does not have", "apply", "-f", manifest)

	u.ok("secret", "put", "db-password", "--from-literal", "db-password=s3cr3t-value")
	u.ok("config", "put", "app-conf", "--from-file", write("app.conf", []byte("greeting=hello\n")))
	u.ok("apply", "-f", manifest)
	if r := u.ok("secret", "list"); !strings.Contains(r.stdout, "db-password") || !strings.Contains(r.stdout, "uses-secrets") || strings.Contains(r.stdout, "s3cr3t-value") {
		t.Errorf("secret list:\n%s", r)
	}
	refused("secret db-password is in use by service uses-secrets", "secret", "rm", "db-password")
	refused("config app-conf is in use by service uses-secrets", "config", "rm", "app-conf")
	refused(`secret "nope"`, "secret", "rm", "nope")
	u.ok("delete", "service", "uses-secrets")
	u.ok("secret", "rm", "db-password")
	u.ok("config", "rm", "app-conf")
}
