package receipt_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/netsvc/receipt"
)

// Example runs one flow between two nodes the way their proxies would: the dialer
// asks for a replica, both ends copy and half-close, and Finish leaves both holding
// the same receipt signed by both.
func Example() {
	keyA, _ := identity.Generate(false)
	keyB, _ := identity.Generate(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialSide, acceptSide := net.Pipe() // in QNet: a mesh stream between the two nodes

	var wg sync.WaitGroup
	var fromA receipt.Receipt
	wg.Go(func() {
		c, err := receipt.WrapDialer(ctx, dialSide, receipt.Config{Self: "node-a", Key: keyA, Peer: "node-b", PeerKey: keyB.Public()},
			receipt.Target{Service: "db", Port: "pg", Depot: "db-1", FromService: "web"})
		if err != nil {
			panic(err)
		}
		c.Write([]byte("SELECT 1"))
		c.CloseWrite()
		io.ReadAll(c) // the answer
		fromA, _ = c.Finish(ctx)
	})

	c, err := receipt.WrapAcceptor(ctx, acceptSide, receipt.Config{Self: "node-b", Key: keyB, Peer: "node-a", PeerKey: keyA.Public()})
	if err != nil {
		panic(err)
	}
	fmt.Println("asked for", c.Hello().Service, c.Hello().Depot)
	query, _ := io.ReadAll(c)
	c.Write([]byte("1"))
	c.CloseWrite()
	fromB, _ := c.Finish(ctx)
	wg.Wait()

	fmt.Printf("query %q\n", query)
	fmt.Println("same receipt at both ends:", fromA.Leaf() == fromB.Leaf())
	fmt.Println("verifies:", receipt.Verify(fromB, keyA.Public(), keyB.Public()) == nil)
	fmt.Println("bytes out/in:", fromB.BytesOut, fromB.BytesIn)
	// Output:
	// asked for db db-1
	// query "SELECT 1"
	// same receipt at both ends: true
	// verifies: true
	// bytes out/in: 8 1
}
