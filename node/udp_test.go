package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"qnet.dev/qnet/netsvc/proxy"
	"qnet.dev/qnet/netsvc/receipt"
	"qnet.dev/qnet/node"
	"qnet.dev/qnet/qnettest"
)

// udpEchoSpec is the spec of an example service with a UDP echo on its udp port.
const udpEchoSpec = `  ports: [{name: http, port: 8080}, {name: echo, port: 9053, protocol: udp}]
  env: {HELLO_UDP_ECHO: echo}
`

// TestUDPService reaches a UDP echo whose only replica runs on node 1 at node 0's
// stable address: node 0's proxy carries the session's datagrams through the tunnel,
// framed under the receipt layer, and when the session ends both nodes co-sign a
// receipt that counts the bytes of the datagrams both ways.
func TestUDPService(t *testing.T) {
	// Sessions end a second after their last datagram, and their flows with them.
	nodes := qnettest.StartNetwork(t, 2, qnettest.Options{Configure: func(c *node.Config) { c.UDPIdleTimeout = time.Second }})
	ctx := context.Background()
	applyHello(t, nodes[0], "echo", 1, udpEchoSpec+fmt.Sprintf("  placement: {constraints: [\"id == %s\"]}\n", nodes[1].ID()))
	waitReady(t, nodes[0], "echo")
	addr := proxyAddr(t, nodes[0], "echo", "echo")
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := []string{"first", "second", strings.Repeat("x", 9000)}
	for _, m := range msgs {
		if err := askUDP(c, m); err != nil {
			t.Fatalf("through node 0's proxy: %v\n%+v", err, nodes[0].Proxy().Stats())
		}
	}
	ps := portStats(nodes[0], "echo", "echo")
	if ps.Protocol != "udp" || ps.Accepted != 1 {
		t.Fatalf("echo's port on node 0: %+v, want one udp session", ps)
	}

	// The session ends when idle, and its flow with it: both nodes keep a co-signed
	// receipt that counts at least the datagrams that were answered, both ways.
	want := int64(0)
	for _, m := range msgs {
		want += int64(len(m))
	}
	for i, n := range nodes {
		var got *receipt.Receipt
		qnettest.WaitFor(t, 20*time.Second, fmt.Sprintf("node %d to keep the UDP flow's receipt", i), func() bool {
			got = findReceipt(t, n.DataDir, "echo", "echo")
			return got != nil
		})
		if got.From != nodes[0].ID() || got.To != nodes[1].ID() || got.BytesOut < want || got.BytesIn < want {
			t.Fatalf("node %d's receipt %+v: want from %s to %s with at least %d bytes each way", i, got.View, nodes[0].ID(), nodes[1].ID(), want)
		}
		if got.FromSig == nil || got.ToSig == nil || got.Dispute != nil {
			t.Fatalf("node %d's receipt of the UDP flow is one-sided: %+v", i, got.Dispute)
		}
	}
	rep, err := nodes[0].Client.Audit(ctx)
	if err != nil || rep.Flows < 1 || rep.Agreed != rep.Flows || len(rep.Findings) != 0 {
		t.Fatalf("audit: %+v %v; want every flow agreed", rep, err)
	}
}

// askUDP sends msg until its echo comes back (the first datagrams may be dropped while
// the session dials its replica through the tunnel).
func askUDP(c net.Conn, msg string) error {
	deadline := time.Now().Add(15 * time.Second)
	buf := make([]byte, 64<<10)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)) // resend interval
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return err
		}
		if string(buf[:n]) != msg {
			return fmt.Errorf("sent %d bytes, got %d back: not the echo", len(msg), n)
		}
		return nil
	}
	return fmt.Errorf("no echo of a %d-byte datagram in 15s", len(msg))
}

// findReceipt returns a co-signed receipt of a flow to service/port from the receipt
// logs in a node's data directory; nil when there is none yet.
func findReceipt(t *testing.T, dataDir, service, port string) *receipt.Receipt {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "receipts", "*.jsonl"))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l struct {
				Receipt *receipt.Receipt `json:"receipt"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Receipt != nil && l.Receipt.Service == service && l.Receipt.Port == port {
				f.Close()
				return l.Receipt
			}
		}
		f.Close()
	}
	return nil
}

// TestFlowsAllowUDP has a depot whose manifest allows it to reach only another service
// send datagrams to a UDP echo through its node's proxy: the proxy refuses the
// session and records the refusal, which the audit lists; the node's own users pass.
func TestFlowsAllowUDP(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("the sending depot is a bash loop; bash is not installed")
	}
	n := qnettest.StartNode(t, qnettest.Options{})
	ctx := context.Background()
	applyHello(t, n, "echo", 1, udpEchoSpec)
	waitReady(t, n, "echo")
	// bash's /dev/udp is a connected UDP socket.
	addr := applyProber(t, n, "sender", "echo", "echo", "udp", "hi")
	qnettest.WaitFor(t, 60*time.Second, "a refused UDP flow from sender to echo in the audit", func() bool {
		rep, err := n.Client.Audit(ctx)
		if err != nil {
			return false
		}
		for _, r := range rep.Refusals {
			if r.FromService == "sender" && r.ToService == "echo" && r.ToPort == "echo" && r.Node == n.ID() {
				return true
			}
		}
		return false
	})
	if ps := portStats(n, "echo", "echo"); ps.Refused == 0 {
		t.Fatalf("echo's port stats %+v: want refused sessions counted", ps)
	}
	// This test process is not a depot: it passes.
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := askUDP(c, "from outside any depot"); err != nil {
		t.Fatal(err)
	}
}

// portStats returns the proxy's books of one service port of node n.
func portStats(n *qnettest.Node, service, port string) proxy.PortStats {
	for _, ps := range n.Proxy().Stats().Ports {
		if ps.Service == service && ps.Port == port {
			return ps
		}
	}
	return proxy.PortStats{}
}
