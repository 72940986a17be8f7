package node_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"qnet.dev/qnet/jointoken"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
)

// TestNoPlaintextBetweenNodes captures the loopback interface while a network of three
// nodes forms, takes in a fourth with a join token, and carries a manifest with a canary
// in its environment and arguments (through raft, a write forwarded from a follower,
// gossip and depot status), then checks the wire: no canary, no service name, no
// operator token, join secret or node key appears in any form on a mesh connection,
// and every mesh connection is TLS records from its first byte. A canary sent over a
// plain TCP connection during the capture is found, so the capture would have shown a
// leak.
func TestNoPlaintextBetweenNodes(t *testing.T) {
	capture := qnettest.StartCapture(t)
	canary := "canary" + randomHex(12)
	name := "leakcheck-" + randomHex(4)
	forwarded := name + "-fwd"

	nodes := qnettest.StartNetwork(t, 3, qnettest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A fourth node joins with a token whose secret must not cross in the clear.
	token, _, err := nodes[0].Client.CreateToken(ctx, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jointoken.Parse(token)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.DefaultConfig(t.TempDir())
	cfg.APIAddr, cfg.MeshAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Join, cfg.Token = nodes[0].Mesh().Addr(), token
	cfg.Logger = qnettest.Logger(t)
	cfg.PathDirs = []string{qnettest.BinDir(t)}
	fourth, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("join a fourth node: %v", err)
	}
	t.Cleanup(func() {
		fourth.StopDepots(context.Background())
		fourth.Close(context.Background())
	})

	// The example service ignores arguments after its name.
	manifest := func(name string, replicas int) string {
		return fmt.Sprintf(`apiVersion: qnet/v1
kind: Service
metadata: {name: %s}
spec:
  depot: {exec: {command: qnet, args: [example-hello, --canary=%s]}}
  replicas: %d
  resources: {cpu: 50m, memory: 32Mi}
  ports: [{name: http, port: 8080}]
  env: {LEAK_CHECK: %s}
  health:
    readiness: {http: /ready, interval: 100ms}
`, name, canary, replicas, canary)
	}
	if _, err := nodes[0].Client.Apply(ctx, decode(t, manifest(name, 1))); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].Client.WaitReady(ctx, name, nil); err != nil {
		t.Fatalf("wait for %s ready: %v", name, err)
	}
	// A write through a node that does not lead is forwarded to the leader on the mesh.
	leader := status(t, nodes[0]).Leader
	var follower *qnettest.Node
	for _, n := range nodes {
		if n.ID() != leader {
			follower = n
			break
		}
	}
	if _, err := follower.Client.Apply(ctx, decode(t, manifest(forwarded, 0))); err != nil {
		t.Fatalf("apply through follower %s: %v", follower.ID(), err)
	}
	all := append([]*node.Node{fourth}, nodeOf(nodes)...)
	qnettest.WaitFor(t, 20*time.Second, "both services in every node's replica of the state", func() bool {
		for _, n := range all {
			for _, s := range []string{name, forwarded} {
				if _, ok, err := n.Store().Service(s); err != nil || !ok {
					return false
				}
			}
		}
		return true
	})

	// The control: plaintext on a loopback connection during the capture is seen.
	control := plainExchange(t, canary)

	var meshPorts []int
	for _, n := range all {
		meshPorts = append(meshPorts, port(t, n.Mesh().Addr()))
	}
	mesh := capture.Flows(meshPorts...)
	stats, err := capture.Stop()
	if err != nil {
		t.Fatal(err)
	}
	var total int
	for _, f := range mesh {
		total += len(f.Payload)
	}
	t.Logf("capture: %+v; %d mesh flows, %d bytes", stats, len(mesh), total)

	// (a) The capture saw the mesh at work.
	if total < 50<<10 {
		t.Fatalf("only %d bytes of mesh traffic captured (%d flows): the capture missed the mesh", total, len(mesh))
	}
	// (b) Nothing secret, in any encoding, on any mesh connection.
	secrets := map[string][]byte{
		"the canary":             []byte(canary),
		"the service name":       []byte(name),
		"the forwarded service":  []byte(forwarded),
		"the operator token":     []byte(nodes[0].Token),
		"the join token":         []byte(token),
		"the join secret":        tok.Secret[:],
		"the join secret in hex": []byte(hex.EncodeToString(tok.Secret[:])),
	}
	for _, n := range all {
		secrets["the private key of node "+n.ID()] = n.Key().Ed25519().Seed()
	}
	for what, secret := range secrets {
		if f, form, ok := qnettest.FindIn(mesh, qnettest.Encodings(secret)); ok {
			t.Errorf("%s crossed the mesh in the clear as %q, on %v -> %v", what, form, f.Src, f.Dst)
		}
	}
	// Every mesh connection was captured whole (the nodes started after the capture),
	// and is TLS from its first byte: no framing, no preamble, no plaintext outside
	// records.
	for _, f := range mesh {
		if !f.Start || f.Gaps > 0 {
			t.Errorf("mesh flow %v -> %v: the capture missed part of it (start seen: %v, %d gaps, %d frames dropped)", f.Src, f.Dst, f.Start, f.Gaps, stats.Dropped)
			continue
		}
		if err := tlsRecords(f.Payload); err != nil {
			t.Errorf("mesh flow %v -> %v (%d bytes) is not TLS: %v", f.Src, f.Dst, len(f.Payload), err)
		}
	}
	// (c) The capture would have caught plaintext.
	plain, _, ok := qnettest.FindIn(capture.Flows(control), [][]byte{[]byte(canary)})
	if !ok {
		t.Fatalf("the canary sent in the clear on port %d was not captured: the capture is blind", control)
	}
	if err := tlsRecords(plain.Payload); err == nil {
		t.Errorf("the plaintext control flow %q passes for TLS: the TLS check is blind", plain.Payload)
	}
}

func nodeOf(ns []*qnettest.Node) []*node.Node {
	var out []*node.Node
	for _, n := range ns {
		out = append(out, n.Node)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// plainExchange sends msg over a plain loopback TCP connection and returns the
// listener's port once the other end has read it.
func plainExchange(t *testing.T, msg string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn)
		got <- string(b)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("plain: " + msg))
	conn.Close()
	if s := <-got; s != "plain: "+msg {
		t.Fatalf("plain exchange read %q", s)
	}
	return ln.Addr().(*net.TCPAddr).Port
}

// tlsRecords checks that b is a sequence of TLS records (RFC 8446 §5.1): content type
// change_cipher_spec, alert, handshake or application_data, a legacy version of
// 0x0301 or 0x0303, and at most 2^14 + 256 bytes of fragment. The last record may be
// cut short where the capture stopped.
func tlsRecords(b []byte) error {
	for off := 0; off < len(b); {
		if len(b)-off < 5 {
			return nil
		}
		typ, version, n := b[off], binary.BigEndian.Uint16(b[off+1:]), int(binary.BigEndian.Uint16(b[off+3:]))
		if typ < 20 || typ > 23 || (version != 0x0301 && version != 0x0303) || n > 1<<14+256 {
			return fmt.Errorf("at byte %d: not a TLS record header: % x", off, b[off:off+5])
		}
		if off == 0 && typ != 22 {
			return fmt.Errorf("the first record is of type %d, not a handshake", typ)
		}
		off += 5 + n
	}
	return nil
}
