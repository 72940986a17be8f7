package swarm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
	"time"

	"qnet.dev/qnet/depot"
	"qnet.dev/qnet/qnettest"
)

func TestMain(m *testing.M) { qnettest.Main(m) }

// TestSwarmSpreadsLoad puts a blob on one node of four and has the other three fetch it
// at once: each gets it intact, and the origin serves well under three copies.
func TestSwarmSpreadsLoad(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 4, qnettest.Options{})
	qnettest.WaitFor(t, 30*time.Second, "gossip to see every node", func() bool {
		for _, n := range nodes {
			if len(n.Gossip().Members()) != 4 {
				return false
			}
		}
		return true
	})
	blob := make([]byte, 40<<20)
	rand.Read(blob)
	d := depot.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(blob)))
	origin := nodes[0]
	if err := origin.Depots().Put(context.Background(), bytes.NewReader(blob), d, int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for _, n := range nodes[1:] {
		go func() {
			r, err := n.Swarm().OpenBlob(context.Background(), d)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err == nil && !bytes.Equal(got, blob) {
				err = fmt.Errorf("node %s got a different blob", n.ID())
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	served := origin.Swarm().Served()
	t.Logf("origin served %.2f× the blob", float64(served)/float64(len(blob)))
	if served > int64(len(blob))*5/2 {
		t.Fatalf("origin served %d bytes for 3 fetches of %d: peers did not share", served, len(blob))
	}
}

// TestSwarmAvoidsLyingPeer has one holder serve corrupt chunks: the fetcher detects
// them by their hashes, blames that peer, and completes from an honest one.
func TestSwarmAvoidsLyingPeer(t *testing.T) {
	nodes := qnettest.StartNetwork(t, 3, qnettest.Options{})
	qnettest.WaitFor(t, 30*time.Second, "gossip to see every node", func() bool {
		return len(nodes[2].Gossip().Members()) == 3
	})
	blob := make([]byte, 33<<20)
	rand.Read(blob)
	d := depot.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(blob)))
	for _, n := range nodes[:2] {
		if err := n.Depots().Put(context.Background(), bytes.NewReader(blob), d, int64(len(blob))); err != nil {
			t.Fatal(err)
		}
	}
	// The liar's copy is corrupted on disk (its store would catch that on its next
	// Verify; it serves the bytes as they are).
	liar := nodes[1]
	if err := qnettest.CorruptBlob(liar.Depots(), d); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for attempt := 0; attempt < 5 && got == nil; attempt++ {
		r, err := nodes[2].Swarm().OpenBlob(context.Background(), d)
		if err != nil {
			continue
		}
		got, _ = io.ReadAll(r)
		r.Close()
	}
	if !bytes.Equal(got, blob) {
		t.Fatal("the blob was not fetched intact")
	}
	if _, ok := nodes[2].Swarm().Bad()[liar.ID()]; !ok {
		t.Fatalf("the lying peer %s was not found out (bad peers: %v)", liar.ID(), nodes[2].Swarm().Bad())
	}
}
