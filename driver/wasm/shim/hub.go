package shim

import (
	"net"
	"sync"
	"time"

	"qnet.dev/qnet/driver/wasm/internal/proto"
)

// writeTimeout bounds a status write to one agent connection, so an agent that stopped
// reading cannot stall the supervisor.
const writeTimeout = 2 * time.Second

// hub holds the supervisor's connections to agents: it sends each the current status
// on arrival and every change after, and passes their commands on. Closing the hub
// closes every connection, which is how the agents learn that the depot has ended.
type hub struct {
	cmds chan proto.Command // commands from any agent; never closed

	mu     sync.Mutex
	status proto.Status
	peers  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup // the readers
}

func newHub(st proto.Status) *hub {
	return &hub{cmds: make(chan proto.Command, 16), status: st, peers: map[net.Conn]bool{}}
}

// add takes a connection (r reads from it; it may hold data read ahead) and serves it
// until it or the hub closes.
func (h *hub) add(c net.Conn, r *proto.Reader) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.peers[c] = true
	send(c, h.status)
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		for {
			var m proto.Message
			if err := r.Next(&m); err != nil {
				break // closed by the agent (an agent restart) or by close
			}
			if m.Command != nil {
				select {
				case h.cmds <- *m.Command:
				default: // a flood of commands: the ones queued say it already
				}
			}
		}
		h.mu.Lock()
		delete(h.peers, c)
		h.mu.Unlock()
		c.Close()
	}()
}

// serve accepts connections on the control socket until it is closed.
func (h *hub) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		h.add(c, proto.NewReader(c))
	}
}

// set records st and sends it to every agent.
func (h *hub) set(st proto.Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = st
	for c := range h.peers {
		send(c, st)
	}
}

// close ends every connection and waits for their readers.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for c := range h.peers {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// send writes one status; a connection that cannot take it is closed (its agent will
// find the depot again through the control socket or the files).
func send(c net.Conn, st proto.Status) {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := proto.NewWriter(c).Send(st); err != nil {
		c.Close()
	}
	c.SetWriteDeadline(time.Time{})
}
