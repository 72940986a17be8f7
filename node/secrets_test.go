//go:build linux

package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"qnet.dev/qnet/cli"
	"qnet.dev/qnet/client"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
	"qnet.dev/qnet/secret"
	"qnet.dev/qnet/state"
)

// syncBuffer collects the logs of every node.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// secretScript prints whether the secret is in its environment and hashes of what it
// got (never the value), and the config file's content.
const secretScript = `if [ -n "$DB_PASSWORD" ]; then echo env=set; else echo env=unset; fi; ` +
	`echo "env-sha=$(printf %s "$DB_PASSWORD" | sha256sum | cut -c1-64)"; ` +
	`echo "file-sha=$(sha256sum < "$QNET_SECRET_FILE_DB_PASSWORD" | cut -c1-64)"; ` +
	`echo "config=$(cat "$QNET_CONFIG_APP_CONF")"; exec sleep 3600`

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// depotOutput is what the depots of a service's revision printed, by depot.
func depotOutput(t *testing.T, nodes []*qnettest.Node, service string, revision uint64) map[string]string {
	out := map[string]string{}
	for _, n := range nodes {
		pls, err := n.Store().Placements(func(p *state.Placement) bool {
			return p.Service == service && p.Revision == revision && p.Node == n.ID()
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pls {
			stdout, _, ok := n.LogPaths(p.ID)
			if !ok {
				continue
			}
			b, _ := os.ReadFile(stdout)
			out[p.ID] = string(b)
		}
	}
	return out
}

// waitOutput waits until every one of replicas depots of the revision printed want.
func waitOutput(t *testing.T, nodes []*qnettest.Node, service string, revision uint64, replicas int, want ...string) map[string]string {
	t.Helper()
	var got map[string]string
	qnettest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d depots of %s revision %d printing %q", replicas, service, revision, want), func() bool {
		got = depotOutput(t, nodes, service, revision)
		if len(got) != replicas {
			return false
		}
		for _, o := range got {
			for _, w := range want {
				if !strings.Contains(o, w) {
					return false
				}
			}
		}
		return true
	})
	return got
}

// TestSecretsNeverInTheClear puts a canary secret, runs a service on two nodes that
// takes it as an environment variable and as a file (and a config file), and checks that
// the depots got it, while its plaintext is in no file of any data dir (apart from the
// depots' own tmpfs mounts), no log, no ledger block, no API answer of the CLI's read
// commands and no packet on the mesh. A node is refused a secret for a depot it does
// not run, or that does not name it; a new version replaces the depots, which then see
// it.
func TestSecretsNeverInTheClear(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("secret files need a tmpfs mount: run as root")
	}
	capture := qnettest.StartCapture(t)
	canary := "canary" + randomHex(12)
	canary2 := "canary" + randomHex(12)
	var logs syncBuffer
	opts := qnettest.Options{Configure: func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}}
	defer func() {
		if t.Failed() {
			t.Logf("node logs:\n%s", logs.Bytes())
		}
	}()
	nodes := qnettest.StartNetwork(t, 2, opts)
	a := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	qnettest.WaitFor(t, 30*time.Second, "the network secret key", func() bool {
		_, ok, _ := a.Store().NetworkKey()
		return ok
	})

	const svcName = "secret-user"
	manifest := fmt.Sprintf(`apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: {command: sh, args: [-c, %q]}}
  replicas: 2
  resources: {cpu: 20m, memory: 16Mi}
  secrets: [{name: db-password, env: DB_PASSWORD, file: /run/secrets/db-password}]
  configs: [{name: app-conf, path: /etc/app.conf}]
`, svcName, secretScript)
	// Apply is refused, by the client and at the door, while the secret does not exist.
	if _, err := a.Client.Apply(ctx, decode(t, manifest)); err == nil || !strings.Contains(err.Error(), "secret db-password, config app-conf, which the network does not have") {
		t.Fatalf("apply before the secret exists: %v", err)
	}

	if _, v, err := a.Client.PutSecret(ctx, "db-password", secret.NewValue("db-password", 0, []byte(canary))); err != nil || v != 1 {
		t.Fatalf("put secret: version %d, %v", v, err)
	}
	if _, _, err := a.Client.PutConfig(ctx, "app-conf", []byte("greeting=hello")); err != nil {
		t.Fatalf("put config: %v", err)
	}
	if _, err := a.Client.Apply(ctx, decode(t, manifest)); err != nil {
		t.Fatal(err)
	}
	svc, _, _ := a.Store().Service(svcName)
	got := waitOutput(t, nodes, svcName, svc.Revision, 2, "env=set", "env-sha="+sha(canary), "file-sha="+sha(canary), "config=greeting=hello")
	t.Logf("depots of revision %d: %v", svc.Revision, got)

	// A node may not have the secret of a depot it does not run, nor a secret its own
	// depot does not name.
	validator := a.ID()
	var asker *qnettest.Node
	for _, n := range nodes {
		if n.ID() != validator {
			asker = n
		}
	}
	onValidator, _ := a.Store().Placements(func(p *state.Placement) bool { return p.Service == svcName && p.Node == validator })
	onAsker, _ := a.Store().Placements(func(p *state.Placement) bool { return p.Service == svcName && p.Node == asker.ID() })
	if len(onValidator) != 1 || len(onAsker) != 1 {
		t.Fatalf("want one depot on each node, got %d on %s and %d on %s", len(onValidator), validator, len(onAsker), asker.ID())
	}
	if err := asker.AskSecret(ctx, validator, "db-password", onValidator[0].ID); err == nil || !strings.Contains(err.Error(), "release not authorized") || !strings.Contains(err.Error(), "runs on node "+validator) {
		t.Errorf("release for another node's depot: %v, want it refused", err)
	}
	if err := asker.AskSecret(ctx, validator, "other-secret", onAsker[0].ID); err == nil || !strings.Contains(err.Error(), "does not name it") {
		t.Errorf("release of a secret the depot does not name: %v, want it refused", err)
	}
	if err := asker.AskSecret(ctx, validator, "db-password", onAsker[0].ID); err != nil {
		t.Errorf("release for the asker's own depot: %v", err)
	}

	// A new version replaces the depots; the new ones see it.
	if _, v, err := a.Client.PutSecret(ctx, "db-password", secret.NewValue("db-password", 0, []byte(canary2))); err != nil || v != 2 {
		t.Fatalf("put secret v2: version %d, %v", v, err)
	}
	svc2, _, _ := a.Store().Service(svcName)
	if svc2.Revision != svc.Revision+1 {
		t.Fatalf("a new version of the secret made revision %d, want %d", svc2.Revision, svc.Revision+1)
	}
	waitOutput(t, nodes, svcName, svc2.Revision, 2, "env=set", "env-sha="+sha(canary2), "file-sha="+sha(canary2))
	// The key can be rotated; the depots keep running on the same revision.
	if res, err := a.Client.RotateSecretKey(ctx); err != nil || res.Secrets != 1 {
		t.Fatalf("rotate the network key: %+v, %v", res, err)
	}
	if s, _, _ := a.Store().Service(svcName); s.Revision != svc2.Revision {
		t.Errorf("rotating the key made revision %d", s.Revision)
	}

	// The CLI puts a secret from a file and removes it; it refuses to remove what a
	// service names.
	cfg := &client.Config{Contexts: map[string]*client.Context{}}
	cfg.Set("test", a.Context)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := cfg.Save(cfgPath); err != nil {
		t.Fatal(err)
	}
	qnet := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Execute(ctx, append([]string{"--config", cfgPath}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	canary3 := "canary" + randomHex(12)
	valueFile := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(valueFile, []byte(canary3), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"secret", "put", "extra", "--from-file", valueFile}, 0, "secret/extra version 1 put"},
		{[]string{"secret", "put", "extra", "--from-file", valueFile}, 0, "secret/extra version 2 put"},
		{[]string{"secret", "list"}, 0, "extra"},
		{[]string{"secret", "rm", "db-password"}, 1, "secret db-password is in use by service secret-user"},
		{[]string{"config", "rm", "app-conf"}, 1, "config app-conf is in use by service secret-user"},
		{[]string{"secret", "rm", "extra"}, 0, "secret/extra removed"},
		{[]string{"secret", "rm", "extra"}, 1, `secret "extra"`},
	} {
		code, out, errOut := qnet(c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("qnet %s: exit %d, %s%s; want exit %d and %q", strings.Join(c.args, " "), code, out, errOut, c.code, c.want)
		}
	}

	// From standard input (qnet secret put NAME -).
	canary4 := "canary" + randomHex(12)
	var putOut, putErr bytes.Buffer
	root := cli.NewRoot(&putOut, &putErr)
	root.SetIn(strings.NewReader(canary4))
	root.SetArgs([]string{"--config", cfgPath, "secret", "put", "from-stdin", "-"})
	if err := root.ExecuteContext(ctx); err != nil || !strings.Contains(putOut.String(), "secret/from-stdin version 1 put") {
		t.Errorf("secret put from-stdin -: %v, %s%s", err, putOut.String(), putErr.String())
	}
	if rec, ok, _ := a.Store().Secret("from-stdin"); !ok || rec.Sealed.Size() != len(canary4) {
		t.Errorf("the secret put from standard input: %+v, %v", rec.Info(), ok)
	}

	canaries := map[string][]byte{"the canary": []byte(canary), "the second canary": []byte(canary2), "the third canary": []byte(canary3), "the fourth canary": []byte(canary4)}
	find := func(where string, data []byte) {
		t.Helper()
		for what, c := range canaries {
			for _, form := range qnettest.Encodings(c) {
				if bytes.Contains(data, form) {
					t.Errorf("%s holds %s (as %q)", where, what, form)
				}
			}
		}
	}

	// The API answers of the CLI's read commands.
	for _, args := range [][]string{
		{"get", "services", "-o", "json"}, {"get", "depots", "-o", "json"}, {"get", "nodes", "-o", "json"},
		{"describe", "service", svcName, "-o", "json"}, {"secret", "list", "-o", "json"}, {"config", "list", "-o", "json"},
		{"ledger", "show", "--from", "0", "--limit", "1000", "-o", "json"}, {"events", "--service", svcName, "-o", "json"},
	} {
		var stdout, stderr bytes.Buffer
		if code := cli.Execute(ctx, append([]string{"--config", cfgPath}, args...), &stdout, &stderr); code != 0 {
			t.Errorf("qnet %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		find("qnet "+strings.Join(args, " "), append(stdout.Bytes(), stderr.Bytes()...))
	}
	var list []state.SecretInfo
	if infos, err := a.Client.Secrets(ctx); err != nil || len(infos) != 2 || infos[0].Name != "db-password" {
		t.Errorf("secret list = %v, %v", infos, err)
	} else if b, _ := json.Marshal(infos); json.Unmarshal(b, &list) == nil && list[0].Version != 2 {
		t.Errorf("secret list shows version %d, want 2", list[0].Version)
	}

	// Every ledger block of every node.
	for _, n := range nodes {
		next, done, err := n.Store().Blocks()
		if err != nil {
			t.Fatal(err)
		}
		blocks := 0
		for {
			h, data, err := next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			blocks++
			find(fmt.Sprintf("block %d of node %s", h, n.ID()), data)
		}
		done()
		if blocks < 5 {
			t.Errorf("node %s has only %d blocks", n.ID(), blocks)
		}
	}

	// Every file of every data dir, depot logs and state included, but the depots'
	// tmpfs mounts, which must be tmpfs mounts.
	for _, n := range nodes {
		files := searchDataDir(t, n.DataDir, find)
		t.Logf("node %s: %d files searched", n.ID(), files)
	}

	// Every log line of every node.
	if len(logs.Bytes()) < 1000 || !bytes.Contains(logs.Bytes(), []byte("secret released")) {
		t.Errorf("the nodes' logs (%d bytes) do not show the releases: the log capture is blind", len(logs.Bytes()))
	}
	find("the nodes' logs", logs.Bytes())

	// Every packet on the mesh; the secret crossed it (to the second node's depots).
	var meshPorts []int
	for _, n := range nodes {
		meshPorts = append(meshPorts, port(t, n.Mesh().Addr()))
	}
	control := plainExchange(t, canary)
	flows := capture.Flows(meshPorts...)
	if _, err := capture.Stop(); err != nil {
		t.Fatal(err)
	}
	for what, c := range canaries {
		if f, form, ok := qnettest.FindIn(flows, qnettest.Encodings(c)); ok {
			t.Errorf("%s crossed the mesh in the clear as %q, on %v -> %v", what, form, f.Src, f.Dst)
		}
	}
	if _, _, ok := qnettest.FindIn(capture.Flows(control), [][]byte{[]byte(canary)}); !ok {
		t.Fatalf("the canary sent in the clear on port %d was not captured: the capture is blind", control)
	}

	// Stopping the depots unmounts their tmpfs: nothing is left.
	for _, n := range nodes {
		if err := n.StopDepots(ctx); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(filepath.Join(n.DataDir, node.SecretsDir))
		if len(entries) != 0 {
			t.Errorf("node %s: %d secret mounts left after its depots stopped", n.ID(), len(entries))
		}
	}
}

// TestNetworkKeySharedWithValidators: the first validator makes the network key at
// init; as other nodes become validators, the leader gives each a share that only its
// own node key opens, all of the same key; a rotation gives every validator a share of
// the new key.
func TestNetworkKeySharedWithValidators(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 3, qnettest.Options{})
	first, _, _ := nodes[0].Store().NetworkKey()
	shared := func(keyID string) bool {
		for _, n := range nodes {
			rec, ok, err := n.Store().NetworkKey()
			if err != nil || !ok || rec.Key.ID != keyID || len(rec.Shares) != 3 {
				return false
			}
			self, _, _ := n.Store().Node(n.ID())
			if !self.Validator {
				return false
			}
			sh, ok := rec.Share(n.ID())
			if !ok {
				return false
			}
			k, err := secret.OpenShare(sh, n.Key().HPKE())
			if err != nil || k.ID() != keyID {
				t.Errorf("node %s cannot open its share: %v", n.ID(), err)
				return false
			}
		}
		return true
	}
	qnettest.WaitFor(t, 30*time.Second, "three validators with a share of key "+first.Key.ID, func() bool { return shared(first.Key.ID) })
	// Another node's key does not open a share.
	rec, _, _ := nodes[0].Store().NetworkKey()
	sh, _ := rec.Share(nodes[1].ID())
	if _, err := secret.OpenShare(sh, nodes[2].Key().HPKE()); err == nil {
		t.Error("node 2's key opened node 1's share")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Rotation through a node that may not lead: it asks the leader.
	res, err := nodes[2].Client.RotateSecretKey(ctx)
	if err != nil || res.Old != first.Key.ID || res.New == res.Old {
		t.Fatalf("rotate: %+v, %v", res, err)
	}
	qnettest.WaitFor(t, 30*time.Second, "every validator with a share of the new key", func() bool { return shared(res.New) })
}

// searchDataDir hands every regular file under a node's data dir to find, but the
// depots' secret tmpfs mounts (which it checks are tmpfs mounts) and the files that
// network namespaces are bound to, and returns how many files it read.
func searchDataDir(t *testing.T, dir string, find func(where string, data []byte)) int {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && filepath.Dir(path) == filepath.Join(dir, node.SecretsDir) {
			var st unix.Statfs_t
			if err := unix.Statfs(path, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
				t.Errorf("%s is not a tmpfs (%v)", path, err)
			}
			return fs.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		var st unix.Statfs_t
		if unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC {
			return nil // a depot's network namespace, bound to a file
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		find(path, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
