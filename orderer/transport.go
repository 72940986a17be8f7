package orderer

import (
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// StreamListener is a byte-stream service whose peers are named by node ID: the mesh's
// raft service.
type StreamListener interface {
	net.Listener
	Dial(nodeID string, timeout time.Duration) (net.Conn, error)
}

// streamLayer adapts a StreamListener to raft.StreamLayer: raft server addresses are
// node IDs, and the mesh finds each node's tunnel.
type streamLayer struct{ StreamListener }

func (s streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.StreamListener.Dial(string(address), timeout)
}

// NewTransport returns raft's network transport over l, logging into log.
func NewTransport(l StreamListener, log *slog.Logger) *raft.NetworkTransport {
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  streamLayer{l},
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Warn, Output: slogWriter{log}}),
	})
}
