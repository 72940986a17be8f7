package tunnel_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/tunnel"
)

// Two registered nodes: one listens, the other dials, opens a stream and writes.
func Example() {
	a, _ := identity.Generate(true)
	b, _ := identity.Generate(true)
	peers := tunnel.NewPeerSet() // the node's state store, in a real node
	peers.Add(a.ID(), a.Public())
	peers.Add(b.ID(), b.Public())

	lcfg := tunnel.DefaultConfig()
	lcfg.Key, lcfg.Peers = b, peers
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	l, err := tunnel.Listen(lcfg, ln)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	ctx := context.Background()
	dcfg := tunnel.DefaultConfig()
	dcfg.Key, dcfg.Peers = a, peers
	d, err := tunnel.Dial(ctx, dcfg, l.Addr().String(), tunnel.Expect{NodeID: b.ID()})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()

	t, err := l.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	peer, _ := t.Peer()
	fmt.Println("listener accepted node a:", peer == a.ID(), "registered:", t.Registered())

	s, err := d.Open(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(s, "hello through the tunnel")
	s.Close()
	r, err := t.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	msg, _ := io.ReadAll(r)
	fmt.Println(string(msg))
	// Output:
	// listener accepted node a: true registered: true
	// hello through the tunnel
}
