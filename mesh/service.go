package mesh

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"qnet.dev/qnet/tunnel"
)

// ServiceListener is a service's incoming streams as a listener, and its outgoing ones
// as dials by node ID: what raft's StreamLayer needs.
type ServiceListener struct {
	m     *Mesh
	name  string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// Listen registers a service whose streams are handed out by Accept.
func (m *Mesh) Listen(name string) *ServiceListener {
	l := &ServiceListener{m: m, name: name, conns: make(chan net.Conn), done: make(chan struct{})}
	m.Handle(name, false, func(ctx context.Context, conn net.Conn, peer Peer) {
		c := &ownedConn{Conn: conn, closed: make(chan struct{})}
		select {
		case l.conns <- c:
		case <-l.done:
			return
		case <-ctx.Done():
			return
		}
		// The stream is the acceptor's now; keep the handler (and so the stream) until
		// it closes it.
		select {
		case <-c.closed:
		case <-ctx.Done():
		}
	})
	return l
}

// Accept implements net.Listener.
func (l *ServiceListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *ServiceListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener: the node's ID.
func (l *ServiceListener) Addr() net.Addr { return NodeAddr(l.m.cfg.NodeID) }

// Dial opens a stream of the service to a node. A node that cannot be reached is tried
// again until the timeout, rather than failing at once: raft backs off exponentially
// after each failed call, so failing fast against a node that is down for a few seconds
// would make it wait long after the node is back.
func (l *ServiceListener) Dial(nodeID string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		conn, err := l.m.Open(ctx, nodeID, l.name)
		if err == nil || ctx.Err() != nil {
			return conn, err
		}
		t := time.NewTimer(dialRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-l.done:
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// dialRetry is how often Dial tries a node that cannot be reached.
const dialRetry = 250 * time.Millisecond

// NodeAddr is a node ID as a net.Addr.
type NodeAddr string

// Network implements net.Addr.
func (a NodeAddr) Network() string { return "qnet" }

// String implements net.Addr.
func (a NodeAddr) String() string { return string(a) }

type ownedConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *ownedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// MaxRPCMessage bounds an RPC request or response.
const MaxRPCMessage = 64 << 20

// RPCError is an error a remote handler returned.
type RPCError struct {
	Node, Method, Message string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("%s on node %s: %s", e.Method, e.Node, e.Message)
}

type rpcResponse struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// HandleRPC serves a method: one JSON request, one JSON response per stream.
func (m *Mesh) HandleRPC(method string, allowUnregistered bool, fn func(ctx context.Context, peer Peer, req json.RawMessage) (any, error)) {
	m.Handle("rpc."+method, allowUnregistered, func(ctx context.Context, conn net.Conn, peer Peer) {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var req json.RawMessage
		if err := json.NewDecoder(io.LimitReader(conn, MaxRPCMessage)).Decode(&req); err != nil {
			m.log.Warn("bad rpc request", "method", method, "peer", peer.NodeID, "err", err)
			return
		}
		conn.SetReadDeadline(time.Time{})
		var resp rpcResponse
		res, err := fn(ctx, peer, req)
		if err != nil {
			resp.Error = err.Error()
		} else if resp.Result, err = json.Marshal(res); err != nil {
			resp.Error = "encode result: " + err.Error()
		}
		w := bufio.NewWriter(conn)
		json.NewEncoder(w).Encode(resp)
		w.Flush()
	})
}

// Call calls a method on a node.
func (m *Mesh) Call(ctx context.Context, nodeID, method string, req, resp any) error {
	conn, err := m.Open(ctx, nodeID, "rpc."+method)
	if err != nil {
		return err
	}
	return roundTrip(ctx, conn, nodeID, method, req, resp)
}

// CallTunnel calls a method over a given tunnel (a newcomer's admission tunnel, which is
// no mesh's).
func CallTunnel(ctx context.Context, t *tunnel.Tunnel, method string, req, resp any) error {
	conn, err := t.Open(ctx)
	if err != nil {
		return err
	}
	if err := writeHeader(conn, "rpc."+method); err != nil {
		conn.Close()
		return err
	}
	id, _ := t.Peer()
	return roundTrip(ctx, conn, id, method, req, resp)
}

func roundTrip(ctx context.Context, conn net.Conn, nodeID, method string, req, resp any) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("%s on node %s: send: %w", method, nodeID, err)
	}
	var r rpcResponse
	if err := json.NewDecoder(io.LimitReader(conn, MaxRPCMessage)).Decode(&r); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s on node %s: %w", method, nodeID, ctx.Err())
		}
		return fmt.Errorf("%s on node %s: no answer: %w", method, nodeID, err)
	}
	if r.Error != "" {
		return &RPCError{Node: nodeID, Method: method, Message: r.Error}
	}
	if resp == nil || len(r.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result, resp); err != nil {
		return fmt.Errorf("%s on node %s: decode answer: %w", method, nodeID, err)
	}
	return nil
}

// IsRPCError reports whether err came from the remote handler (not the transport).
func IsRPCError(err error) bool {
	var e *RPCError
	return errors.As(err, &e)
}
