// Package qnettest helps tests start real QNet nodes in one process: the test binary
// plays the parts the qnet binary plays for a node (the depot shim, the example service),
// so depots are real processes under a real shim, and a node is the same code that
// `qnet agent` runs.
package qnettest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"qnet.dev/qnet/client"
	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/driver/exec/shim"
	"qnet.dev/qnet/driver/oci"
	wasmshim "qnet.dev/qnet/driver/wasm/shim"
	"qnet.dev/qnet/examples/hello"
	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/netsvc"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/tunnel"
)

// Main is the TestMain of packages that start nodes: it dispatches the shim and the
// example service when the test binary is run as them, and runs the tests otherwise.
func Main(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "shim":
			os.Exit(shim.Main(os.Args[2:]))
		case oci.HelperCommand:
			os.Exit(oci.HelperMain(os.Args[2:]))
		case "wasm-shim":
			os.Exit(wasmshim.Main(os.Args[2:]))
		case "example-hello":
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			err := hello.Run(ctx, os.Stdout)
			stop()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// BinDir returns a directory holding "qnet", a link to the test binary, so depots whose
// command is qnet run the test binary (see Main).
func BinDir(t testing.TB) string {
	binOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			binErr = err
			return
		}
		binDir, binErr = os.MkdirTemp("", "qnettest-bin-")
		if binErr == nil {
			binErr = os.Symlink(exe, filepath.Join(binDir, "qnet"))
		}
	})
	if binErr != nil {
		t.Fatalf("qnettest: %v", binErr)
	}
	return binDir
}

// Node is a node started by a test, with a client for its API.
type Node struct {
	*node.Node
	DataDir string
	Token   string
	Client  *client.Client
	Context *client.Context
	cfg     node.Config
}

// Options tune StartNode.
type Options struct {
	// DataDir reuses a data dir (to restart a node); empty makes a new network.
	DataDir string
	Token   string
	// Join makes the node join the network of this node (through a new join token)
	// instead of making a network of its own.
	Join *Node
	// OperatorKey is the operator's key file (default: the one in DataDir).
	OperatorKey string
	// Configure may change the node's configuration before it starts.
	Configure func(*node.Config)
}

// StartNode initialises a one-node network (unless opts.DataDir names one) and starts
// its node. The node is closed, and its depots stopped, when the test ends.
func StartNode(t testing.TB, opts Options) *Node {
	t.Helper()
	n := &Node{DataDir: opts.DataDir, Token: opts.Token}
	var joinAddr, joinToken string
	opKey := opts.OperatorKey
	if opts.Join != nil {
		n.DataDir = t.TempDir()
		n.Token = opts.Join.Token
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		tok, _, err := opts.Join.Client.CreateToken(ctx, time.Hour, 1)
		cancel()
		if err != nil {
			t.Fatalf("join token: %v", err)
		}
		joinAddr, joinToken, opKey = opts.Join.Mesh().Addr(), tok, opts.Join.Context.OperatorKey
	} else if n.DataDir == "" {
		n.DataDir = t.TempDir()
		res, err := node.Init(node.InitOptions{DataDir: n.DataDir, Network: "test", Operator: "tester", NodeName: "node1", APIAddr: "127.0.0.1:0"})
		if err != nil {
			t.Fatalf("init: %v", err)
		}
		n.Token = res.Token
	}
	n.cfg = node.DefaultConfig(n.DataDir)
	n.cfg.APIAddr = "127.0.0.1:0"
	n.cfg.MeshAddr = "127.0.0.1:0"
	// Several nodes share this loopback: each has its own DNS port and proxy ports.
	n.cfg.DNSAddr = "127.0.0.1:0"
	n.cfg.IngressAddr = "127.0.0.1:0"
	n.cfg.ReceiptCommit = 200 * time.Millisecond
	n.cfg.ProxyBind = func(netsvc.ServicePort) string { return "127.0.0.1:0" }
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	n.cfg.ShimBinary = exe
	n.cfg.PathDirs = []string{BinDir(t)}
	n.cfg.Logger = Logger(t)
	n.cfg.Join, n.cfg.Token = joinAddr, joinToken
	n.cfg.Stabilize = 2 * time.Second
	if opts.Configure != nil {
		opts.Configure(&n.cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.Node, err = node.Start(ctx, n.cfg)
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	key := n.Key()
	if opKey == "" {
		opKey = filepath.Join(n.DataDir, node.OperatorKeyFile)
	}
	n.Context = &client.Context{
		Server:      "https://" + n.APIAddr(),
		Token:       n.Token,
		OperatorKey: opKey,
		ServerKey:   Pin(t, key),
		Network:     "test",
	}
	if n.Client, err = client.New(n.Context); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(t, true) })
	return n
}

// Pin is the API key pin of a node key.
func Pin(t testing.TB, key *identity.Key) string {
	der, err := x509.MarshalPKIXPublicKey(key.Ed25519().Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Stop closes the node; with stopDepots its depots are stopped first, otherwise they
// keep running for the next start to adopt. Stopping twice is harmless.
func (n *Node) Stop(t testing.TB, stopDepots bool) {
	if n.Node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if stopDepots {
		if err := n.StopDepots(ctx); err != nil {
			t.Errorf("stop depots: %v", err)
		}
	}
	if err := n.Close(ctx); err != nil {
		t.Errorf("close node: %v", err)
	}
	n.Node = nil
}

// StartNetwork starts a network of size nodes in this process: the first makes it, the
// others join it with join tokens.
func StartNetwork(t testing.TB, size int, opts Options) []*Node {
	t.Helper()
	first := StartNode(t, opts)
	nodes := []*Node{first}
	for i := 1; i < size; i++ {
		o := opts
		o.Join = first
		nodes = append(nodes, StartNode(t, o))
	}
	return nodes
}

// Restart stops the node, leaving its depots running, and starts it again on the same
// data dir.
func (n *Node) Restart(t testing.TB) *Node {
	t.Helper()
	n.Stop(t, false)
	return StartNode(t, Options{DataDir: n.DataDir, Token: n.Token, OperatorKey: n.Context.OperatorKey, Configure: func(c *node.Config) {
		*c = n.cfg
		c.APIAddr, c.MeshAddr, c.DNSAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	}})
}

// WaitFor polls cond until it holds or the timeout passes, then fails the test with what.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Logger returns a logger that writes to the test log (debug with QNET_TEST_LOG=1,
// nothing otherwise).
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("QNET_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// DialWithKey opens a tunnel to the node at addr (whose key fingerprint is fp) with the
// given identity, and closes it again; it returns why the tunnel was refused, if it was.
func DialWithKey(t testing.TB, key *identity.Key, addr string, fp [32]byte) error {
	cfg := tunnel.DefaultConfig()
	cfg.Key, cfg.Logger = key, Logger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn, err := tunnel.Dial(ctx, cfg, addr, tunnel.Expect{Fingerprint: fp})
	if err != nil {
		return err
	}
	defer tn.Close()
	// The handshake may finish on the dialer's side just before the listener refuses:
	// a stream shows whether the tunnel really stands.
	conn, err := tn.Open(ctx)
	if err != nil {
		return err
	}
	conn.Close()
	select {
	case <-tn.Done():
		return tn.Err()
	case <-time.After(0):
	}
	return nil
}

// CorruptBlob flips a byte in every MiB of a stored blob, as a failing disk or a
// malicious node would, without the store's knowledge.
func CorruptBlob(s *depot.Store, d depot.Digest) error {
	path, err := s.Path(d)
	if err != nil {
		return err
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	b := make([]byte, 1)
	for off := int64(0); off < st.Size(); off += 1 << 20 {
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}
