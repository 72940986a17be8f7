package receipt

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
	"unicode/utf8"

	"qnet.dev/qnet/identity"
)

// Target is what a dialer asks the acceptor for, and who asks.
type Target struct {
	// Service, Port and Depot name the replica's port the stream is for.
	Service string
	Port    string
	Depot   string
	// FromService and FromDepot name the calling workload on this node, when known.
	FromService string
	FromDepot   string
}

// ErrRefused is matched (errors.Is) by a RefusedError.
var ErrRefused = errors.New("flow refused")

// RefusedError is what a dialer's Read and Finish return when the acceptor refused
// the flow.
type RefusedError struct {
	Node   string // the node that refused
	Flow   string
	Reason string
}

// Error says which node refused which flow, and why.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("flow %s refused by node %s: %s", e.Flow, e.Node, e.Reason)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Conn is one end of a flow between nodes in the frame layer: a net.Conn over the
// payload that counts and hashes it both ways, and at the end co-signs a receipt with
// the other end (Finish).
//
// Read and Write may run at once in two goroutines, as a proxy's two copy loops do;
// CloseWrite ends this end's direction. Finish must be called once, after those loops
// are done.
type Conn struct {
	raw    net.Conn
	br     *bufio.Reader
	cfg    Config
	side   Side
	hello  Hello
	opened time.Time // this end's open time

	rmu       sync.Mutex
	remaining int  // payload bytes left in the current DATA frame
	rEnded    bool // the peer's END arrived
	rerr      error
	recv      tally

	wmu      sync.Mutex
	wbuf     []byte
	wEnded   bool // this end's END (or REFUSE) went out
	werr     error
	refused  bool // this end refused the flow
	sentData bool
	sent     tally

	fmu      sync.Mutex
	finished bool
}

// WrapDialer starts a flow on conn, a fresh stream to cfg.Peer: it picks a flow ID and
// sends the HELLO frame. The acceptor's refusal, if any, shows on Read.
func WrapDialer(ctx context.Context, conn net.Conn, cfg Config, t Target) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := Hello{
		Version: helloVersion, Flow: NewFlowID(),
		Service: t.Service, Port: t.Port, Depot: t.Depot, From: cfg.Self, To: cfg.Peer,
		FromService: t.FromService, FromDepot: t.FromDepot, Opened: cfg.now(), Hash: DefaultHash(),
	}
	if cfg.Format1 || h.Hash == HashSHA256 {
		h.Version, h.Hash = helloSHA256, HashSHA256
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("receipt dial: target: %w", err)
	}
	body, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("receipt dial: encode hello: %w", err)
	}
	stop := watch(ctx, conn)
	_, err = conn.Write(appendFrame(nil, frameHello, body))
	stop()
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("receipt dial: send hello of flow %s to %s: %w", h.Flow, cfg.Peer, err))
	}
	return newConn(conn, bufio.NewReader(conn), cfg, Dialer, h, h.Opened), nil
}

// WrapAcceptor takes a flow on conn, a stream from cfg.Peer: it reads the HELLO frame
// and checks that it names this node and the peer. The caller then connects the
// stream to the replica that Hello names, or refuses it (Refuse).
func WrapAcceptor(ctx context.Context, conn net.Conn, cfg Config) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	br := bufio.NewReader(conn)
	stop := watch(ctx, conn)
	fh, body, err := readFrame(br)
	stop()
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("receipt accept from %s: read hello: %w", cfg.Peer, err))
	}
	if fh.typ != frameHello {
		return nil, fmt.Errorf("receipt accept from %s: %w: first frame is %s, want HELLO", cfg.Peer, ErrProtocol, frameName(fh.typ))
	}
	h, err := decodeHello(body)
	if err != nil {
		return nil, fmt.Errorf("receipt accept from %s: %w", cfg.Peer, err)
	}
	if h.To != cfg.Self {
		return nil, fmt.Errorf("receipt accept from %s: %w: hello of flow %s is for node %s, this is %s", cfg.Peer, ErrProtocol, h.Flow, h.To, cfg.Self)
	}
	if h.From != cfg.Peer {
		return nil, fmt.Errorf("receipt accept from %s: %w: hello of flow %s claims to come from node %s", cfg.Peer, ErrProtocol, h.Flow, h.From)
	}
	return newConn(conn, br, cfg, Acceptor, h, cfg.now()), nil
}

func newConn(raw net.Conn, br *bufio.Reader, cfg Config, side Side, h Hello, opened time.Time) *Conn {
	return &Conn{raw: raw, br: br, cfg: cfg, side: side, hello: h, opened: opened,
		recv: tally{alg: h.Hash}, sent: tally{alg: h.Hash}}
}

// Hello returns the flow's HELLO: its ID, target and ends.
func (c *Conn) Hello() Hello { return c.hello }

// Side reports which end of the flow this is.
func (c *Conn) Side() Side { return c.side }

// Sent returns the tally of the payload this end has written.
func (c *Conn) Sent() Tally { return c.sent.get() }

// Received returns the tally of the payload this end has read.
func (c *Conn) Received() Tally { return c.recv.get() }

// Read reads payload. It returns io.EOF after the peer's END frame, a *RefusedError
// when the acceptor refused the flow, and io.ErrUnexpectedEOF when the stream ended
// without an END.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for c.remaining == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.rEnded {
			return 0, io.EOF
		}
		c.rerr = c.nextDataFrame()
	}
	if len(p) > c.remaining {
		p = p[:c.remaining] // never read past the frame: the next header is not payload
	}
	n, err := c.br.Read(p)
	c.recv.add(p[:n])
	c.remaining -= n
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		c.rerr = fmt.Errorf("flow %s: read DATA frame: %w", c.hello.Flow, err)
		if n > 0 {
			return n, nil
		}
		return 0, c.rerr
	}
	return n, nil
}

// nextDataFrame reads frame headers until a DATA frame starts (setting remaining) or
// the direction ends; it returns the error that ends reading, if any.
func (c *Conn) nextDataFrame() error {
	h, err := readHeader(c.br)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("flow %s: stream from %s ended before its END frame: %w", c.hello.Flow, c.cfg.Peer, err)
	}
	switch {
	case h.typ == frameData:
		c.remaining = h.n
		return nil
	case h.typ == frameEnd:
		c.rEnded = true
		return nil
	case h.typ == frameRefuse && c.side == Dialer && !c.sawData():
		body := make([]byte, h.n)
		if _, err := io.ReadFull(c.br, body); err != nil {
			return fmt.Errorf("flow %s: read REFUSE frame: %w", c.hello.Flow, err)
		}
		reason, err := decodeRefuse(body)
		if err != nil {
			return fmt.Errorf("flow %s: %w", c.hello.Flow, err)
		}
		return &RefusedError{Node: c.cfg.Peer, Flow: c.hello.Flow, Reason: reason}
	}
	return fmt.Errorf("flow %s: %w: %s frame from the %s while reading data", c.hello.Flow, ErrProtocol, frameName(h.typ), 3-c.side)
}

func (c *Conn) sawData() bool { return c.recv.count() > 0 }

// parallelHash is the smallest frame whose payload Write hashes on a goroutine of its
// own while the stream sends it: the stream's Write returns only once the tunnel has
// encrypted and sent the frame, and hashing beside it takes the hash off the sender's
// path. A smaller frame hashes in less time than the hand-off costs.
const parallelHash = 16 << 10

// Write sends p as DATA frames of at most MaxFrame bytes each. A frame whose write
// fails is counted as sent, since part of it may have reached the peer; the flow's
// receipt is one-sided from then on.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.wEnded {
		return 0, fmt.Errorf("flow %s: write after CloseWrite: %w", c.hello.Flow, net.ErrClosed)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxFrame)]
		// One write per frame, header and payload together: a message-oriented
		// stream (a yamux stream) then carries each frame in one message, where two
		// writes would cost a second message, record and system call (twice the
		// cost of receipts in BenchmarkReceiptCost).
		c.wbuf = append(appendHeader(c.wbuf[:0], frameData, len(chunk)), chunk...)
		var err error
		if len(chunk) >= parallelHash {
			var wg sync.WaitGroup
			wg.Go(func() { c.sent.add(chunk) })
			_, err = c.raw.Write(c.wbuf)
			wg.Wait()
		} else {
			_, err = c.raw.Write(c.wbuf)
			c.sent.add(chunk)
		}
		if err != nil {
			c.werr = fmt.Errorf("flow %s: write DATA frame: %w", c.hello.Flow, err)
			return written, c.werr
		}
		c.sentData = true
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// CloseWrite ends this end's direction with an END frame; the peer's Read then
// returns io.EOF. Reading goes on.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wEnded {
		return nil
	}
	if c.werr != nil {
		return c.werr
	}
	c.wEnded = true
	if _, err := c.raw.Write(appendHeader(nil, frameEnd, 0)); err != nil {
		c.werr = fmt.Errorf("flow %s: write END frame: %w", c.hello.Flow, err)
		return c.werr
	}
	return nil
}

// Refuse refuses the flow (acceptor only, before it wrote any data): the dialer's Read
// returns a *RefusedError with the reason. It returns the refusal for the node's log;
// the caller closes the stream. A reason longer than MaxReason is cut.
func (c *Conn) Refuse(ctx context.Context, reason string) (Refusal, error) {
	if c.side != Acceptor {
		return Refusal{}, fmt.Errorf("flow %s: only the acceptor refuses a flow", c.hello.Flow)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sentData || c.wEnded {
		return Refusal{}, fmt.Errorf("flow %s: refuse after data or END was sent", c.hello.Flow)
	}
	reason = cutUTF8(reason, MaxReason)
	c.wEnded, c.refused = true, true
	rf := Refusal{
		Node: c.cfg.Self, Flow: c.hello.Flow, FromNode: c.hello.From, FromService: c.hello.FromService,
		FromDepot: c.hello.FromDepot, ToService: c.hello.Service, ToPort: c.hello.Port, At: c.cfg.now(), Reason: reason,
	}
	stop := watch(ctx, c.raw)
	_, err := c.raw.Write(appendFrame(nil, frameRefuse, []byte(reason)))
	stop()
	if err != nil {
		c.werr = fmt.Errorf("flow %s: write REFUSE frame: %w", c.hello.Flow, err)
		return rf, ctxErr(ctx, c.werr)
	}
	return rf, nil
}

// cutUTF8 shortens s to at most n bytes without splitting a character, and replaces
// invalid UTF-8.
func cutUTF8(s string, n int) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // invalid bytes become U+FFFD
	}
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) { // drop the split character's first bytes
		s = s[:len(s)-1]
	}
	return s
}

// Finish ends the flow and co-signs its receipt with the peer: it sends END if
// CloseWrite did not, reads (and counts) what the peer still sends up to its END,
// then exchanges views (see Exchange). It returns a receipt to keep in every case but
// a refusal or a second call: complete, or one-sided with an error saying why. When
// ctx ends first, the stream's I/O is cut short and the receipt is one-sided; give it
// a deadline, since a peer that never sends END would otherwise hold Finish forever.
//
// Finish does not close the stream.
func (c *Conn) Finish(ctx context.Context) (Receipt, error) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.finished {
		return Receipt{}, fmt.Errorf("flow %s: Finish called twice", c.hello.Flow)
	}
	c.finished = true
	c.wmu.Lock()
	refused := c.refused
	c.wmu.Unlock()
	if refused {
		return Receipt{}, fmt.Errorf("flow %s: refused by this node, so no receipt", c.hello.Flow)
	}
	stop := watch(ctx, c.raw)
	defer stop()

	// Send END and read to the peer's END at once: over an unbuffered stream, two
	// ends that both wrote first would wait on each other forever.
	var werr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		werr = c.CloseWrite()
	}()
	rerr := c.drain()
	if rerr != nil {
		c.raw.SetWriteDeadline(time.Unix(1, 0)) // the stream is broken: free the END writer
	}
	<-done
	if re := (*RefusedError)(nil); errors.As(rerr, &re) {
		return Receipt{}, rerr
	}
	mine := c.view()
	if err := errors.Join(rerr, werr); err != nil {
		err = ctxErr(ctx, err)
		r, serr := sealOneSided(c.side, mine, &c.cfg, "stream did not end cleanly: "+err.Error())
		if serr != nil {
			return Receipt{}, errors.Join(err, serr)
		}
		return r, err
	}
	r, err := exchange(c.br, c.raw, c.side, mine, &c.cfg)
	return r, ctxErr(ctx, err)
}

// drain reads and counts the peer's data up to its END.
func (c *Conn) drain() error {
	buf := make([]byte, 16<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// view is this end's account of the flow now, in the dialer's perspective.
func (c *Conn) view() View {
	v := c.hello.view()
	sent, recv := c.sent.get(), c.recv.get()
	v.Opened = c.opened
	v.Closed = c.cfg.now()
	if v.Closed.Before(v.Opened) { // the wall clock stepped back during the flow
		v.Closed = v.Opened
	}
	if c.side == Dialer {
		v.BytesOut, v.HashOut, v.BytesIn, v.HashIn = sent.Bytes, sent.Hash, recv.Bytes, recv.Hash
	} else {
		v.BytesOut, v.HashOut, v.BytesIn, v.HashIn = recv.Bytes, recv.Hash, sent.Bytes, sent.Hash
	}
	return v
}

// sealOneSided signs v alone, with a dispute saying why there is no co-signature.
func sealOneSided(side Side, v View, cfg *Config, reason string) (Receipt, error) {
	sig, err := cfg.Key.Sign(identity.DomainReceipt, v.canonical())
	if err != nil {
		return Receipt{}, fmt.Errorf("flow %s: sign receipt: %w", v.Flow, err)
	}
	r := Receipt{View: v, Dispute: &Dispute{Reason: reason}}
	if side == Dialer {
		r.FromSig = &sig
	} else {
		r.ToSig = &sig
	}
	return r, nil
}

// Close closes the underlying stream.
func (c *Conn) Close() error { return c.raw.Close() }

// LocalAddr returns the underlying stream's local address.
func (c *Conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the underlying stream's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets the underlying stream's deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline sets the underlying stream's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline sets the underlying stream's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
