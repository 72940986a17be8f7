package node_test

import (
	"net"
	"testing"
)

func listenAny(t *testing.T) (net.Listener, error) { return net.Listen("tcp", "0.0.0.0:0") }
