package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"qnet.dev/qnet/client"
)

// TestBadInput feeds the CLI what users get wrong and checks each gets a clear error and
// a non-zero exit, and changes nothing: a bad manifest, a wrong token, a data dir that
// holds no network, an API port that is taken, and a ledger altered on disk.
func TestBadInput(t *testing.T) {
	u := newUser(t)
	data := filepath.Join(u.dir, "node")
	addr := freeAddr(t)
	nodeID := initNode(u, data, "e2e-bad", addr)
	u.killNodeAtCleanup(&nodeID)
	agent := startAgent(u, data, addr)

	blocks := func() int {
		t.Helper()
		var rep struct {
			OK     bool `json:"ok"`
			Blocks int  `json:"blocks"`
		}
		u.json(&rep, "ledger", "verify", "-o", "json")
		if !rep.OK {
			t.Fatalf("the running node's ledger does not verify: %+v", rep)
		}
		return rep.Blocks
	}

	t.Run("bad manifest", func(t *testing.T) {
		// A context whose server is a listener of this test: had apply reached out
		// to its node, the connection would wait in the listener's queue.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cfg, err := client.LoadConfig(u.config)
		if err != nil {
			t.Fatal(err)
		}
		c := *cfg.Contexts[cfg.Current]
		c.Server = "https://" + ln.Addr().String()
		cfg.Set("listener", &c)
		listenerConfig := filepath.Join(u.dir, "listener.yaml")
		if err := cfg.Save(listenerConfig); err != nil {
			t.Fatal(err)
		}

		before := blocks()
		file := filepath.Join("testdata", "bad.yaml")
		for _, config := range []string{listenerConfig, u.config} {
			r := u.qnet("--config", config, "apply", "-f", file)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("want exit 1 and nothing on stdout\n%s", r)
			}
			for _, want := range []string{
				file + ":6:9: metadata.name: must be a DNS label",
				file + ":11:13: spec.replicas: must be between 0 and 10000, got -2",
				file + ":12:3: spec.colour: unknown field",
				"Error: " + file + ": 3 problem(s) in the manifests; nothing was applied",
			} {
				if !hasLinePrefix(r.stderr, want) {
					t.Errorf("stderr lacks a line starting %q\n%s", want, r)
				}
			}
		}
		if conn, ok := acceptNow(t, ln); ok {
			conn.Close()
			t.Errorf("apply of a bad manifest connected to its context's server")
		}
		if after := blocks(); after != before {
			t.Errorf("the ledger grew from %d to %d blocks after a bad manifest", before, after)
		}
		if svcs := u.services(); len(svcs) != 0 {
			t.Errorf("services after a bad manifest: %+v", svcs)
		}
	})

	t.Run("wrong token", func(t *testing.T) {
		cfg, err := client.LoadConfig(u.config)
		if err != nil {
			t.Fatal(err)
		}
		c := *cfg.Contexts[cfg.Current]
		c.Token = "qnet_" + strings.Repeat("a", 52)
		cfg.Set("wrong", &c)
		wrong := filepath.Join(u.dir, "wrong.yaml")
		if err := cfg.Save(wrong); err != nil {
			t.Fatal(err)
		}
		r := u.qnet("--config", wrong, "get", "services")
		if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "Error: wrong credential") {
			t.Errorf("want exit 1 and \"Error: wrong credential\"\n%s", r)
		}
	})

	t.Run("data dir without a network", func(t *testing.T) {
		empty := filepath.Join(u.dir, "empty")
		if err := os.Mkdir(empty, 0o700); err != nil {
			t.Fatal(err)
		}
		r := u.qnet("agent", "--data-dir", empty)
		if r.code != 1 || !strings.Contains(r.stderr, "qnet init --data-dir "+empty) {
			t.Errorf("want exit 1 and advice to run qnet init --data-dir %s\n%s", empty, r)
		}
		if entries, _ := os.ReadDir(empty); len(entries) != 0 {
			t.Errorf("qnet agent wrote %d file(s) into a data dir without a network", len(entries))
		}
	})

	// A service on the ledger, for the tampering below; it has no replicas.
	r := u.ok("apply", "-f", filepath.Join("testdata", "ledgered.yaml"))
	if !strings.Contains(r.stdout, "service/ledgered created (revision 1)") {
		t.Fatalf("apply ledgered.yaml: %s", r)
	}
	agent.signal(syscall.SIGTERM)
	if code := agent.wait(40 * time.Second); code != 0 {
		t.Fatalf("the agent exited with code %d after SIGTERM, want 0", code)
	}

	t.Run("API port taken", func(t *testing.T) {
		// The address the node was made with, now held by someone else; then one
		// given with --api-addr.
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("take the node's API port: %v", err)
		}
		defer ln.Close()
		other, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		for _, c := range []struct{ addr, flag string }{{addr, ""}, {other.Addr().String(), "--api-addr"}} {
			args := []string{"agent", "--data-dir", data}
			if c.flag != "" {
				args = append(args, c.flag, c.addr)
			}
			r := u.qnet(args...)
			if r.code != 1 || !strings.Contains(r.stderr, "API address "+c.addr) ||
				!strings.Contains(r.stderr, "address already in use") || !strings.Contains(r.stderr, "--api-addr") {
				t.Errorf("want exit 1 and an error naming %s as in use, suggesting --api-addr\n%s", c.addr, r)
			}
		}
	})

	t.Run("tampered ledger", func(t *testing.T) {
		r := u.qnet("ledger", "verify", "--data-dir", data)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Ledger verified: ") {
			t.Fatalf("the untouched ledger does not verify\n%s", r)
		}
		height := renameInLedger(t, filepath.Join(data, "state.db"), `"name":"ledgered"`, `"name":"ledgerex"`)
		r = u.qnet("ledger", "verify", "--data-dir", data)
		want := fmt.Sprintf("ledger verification failed after %d good block(s): tampered block %d:", height, height)
		if r.code == 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, "Error: "+want) {
			t.Errorf("want a non-zero exit and %q\n%s", "Error: "+want, r)
		}
	})
}

// hasLinePrefix reports whether a line of s starts with prefix.
func hasLinePrefix(s, prefix string) bool {
	for l := range strings.Lines(s) {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// acceptNow accepts a connection that waits in ln's queue, without waiting for one
// that has not come.
func acceptNow(t *testing.T, ln net.Listener) (net.Conn, bool) {
	t.Helper()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var (
		nfd    int
		accErr error
	)
	// The listener's socket is non-blocking: accept answers EAGAIN when the queue is
	// empty.
	if err := raw.Control(func(fd uintptr) {
		nfd, _, accErr = syscall.Accept(int(fd))
	}); err != nil {
		t.Fatal(err)
	}
	if errors.Is(accErr, syscall.EAGAIN) {
		return nil, false
	}
	if accErr != nil {
		t.Fatalf("accept: %v", accErr)
	}
	f := os.NewFile(uintptr(nfd), "accepted")
	defer f.Close()
	conn, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return conn, true
}

// renameInLedger replaces old with new in the stored block that holds the
// service.apply transaction carrying old, in a stopped node's state.db, as an attacker
// with the disk would; it returns the block's height.
func renameInLedger(t *testing.T, path, old, new string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	var height uint64
	found := false
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("blocks"))
		if b == nil {
			return errors.New(`no bucket "blocks"`)
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if !bytes.Contains(v, []byte(`"type":"service.apply"`)) || !bytes.Contains(v, []byte(old)) {
				continue
			}
			if len(k) != 8 {
				return fmt.Errorf("block key %x is not an 8-byte height", k)
			}
			height, found = binary.BigEndian.Uint64(k), true
			return b.Put(k, bytes.ReplaceAll(v, []byte(old), []byte(new)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("alter %s: %v", path, err)
	}
	if !found {
		t.Fatalf("no stored block holds a service.apply transaction with %s", old)
	}
	return height
}
