package mesh

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for what a peer sends on a stream: the header that names the service,
// and an RPC request. Run one with: go test -fuzz FuzzReadHeader ./mesh

func header(name string) []byte {
	var b bytes.Buffer
	if err := writeHeader(&b, name); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// FuzzReadHeader: a header is read exactly when the input holds one (a length of 1 to
// MaxServiceName and that many bytes), it consumes only its own bytes, and writing the
// name back gives those bytes.
func FuzzReadHeader(f *testing.F) {
	for _, name := range []string{"raft", "rpc.submit", "gossip.packet", strings.Repeat("x", MaxServiceName)} {
		f.Add(header(name))
		f.Add(append(header(name), "trailing stream bytes"...))
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{MaxServiceName + 1})
	f.Add([]byte{0xff, 'a'})
	f.Add([]byte{5, 'r', 'a'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		name, err := readHeader(r)
		whole := len(in) > 0 && in[0] >= 1 && int(in[0]) <= MaxServiceName && len(in) >= 1+int(in[0])
		if err != nil {
			if whole {
				t.Fatalf("a whole header refused: %v", err)
			}
			return
		}
		if !whole {
			t.Fatalf("read %q from a header that is not whole: % x", name, in)
		}
		used := len(in) - r.Len()
		if used != 1+len(name) {
			t.Fatalf("read %d bytes for a name of %d", used, len(name))
		}
		if again := header(name); !bytes.Equal(again, in[:used]) {
			t.Fatalf("name %q writes as % x, read from % x", name, again, in[:used])
		}
	})
}

// streamConn is a stream whose peer sent in and closed its side; what the handler
// writes is kept.
type streamConn struct {
	r   *bytes.Reader
	out bytes.Buffer
}

func (c *streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *streamConn) Close() error                     { return nil }
func (c *streamConn) LocalAddr() net.Addr              { return NodeAddr("local") }
func (c *streamConn) RemoteAddr() net.Addr             { return NodeAddr("peer") }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRPCRequest sends an RPC request down the path a stream from a peer takes (header,
// service lookup, HandleRPC's decoding) to an echo method, and checks the outcome
// against encoding/json's own reading of the input: the method runs exactly when the
// input starts with a JSON value, it is given that value byte for byte, and the answer
// is one response carrying the value back (or the method's error).
func FuzzRPCRequest(f *testing.F) {
	for _, s := range []string{
		`{"txs":[]}`, `  {"network":"n","token":"t","secret":"00","node":{"id":"x"}}` + "\n", `[1,2,3]`, `"fail"`,
		`null`, `{"a":` /* cut short */, `{"a":1}{"b":2}`, `not json`, ``, `{"a":"\ud800"}`, `1e400`, "\xff",
	} {
		f.Add([]byte(s))
	}
	m := &Mesh{services: map[string]service{}, log: slog.New(slog.DiscardHandler), cfg: Config{NodeID: "self"}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	defer m.cancel()
	var got json.RawMessage
	var called bool
	m.HandleRPC("echo", false, func(ctx context.Context, peer Peer, req json.RawMessage) (any, error) {
		called, got = true, req
		if string(req) == `"fail"` {
			return nil, errors.New("asked to fail")
		}
		return req, nil
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		called, got = false, nil
		conn := &streamConn{r: bytes.NewReader(append(header("rpc.echo"), in...))}
		m.serveStream(conn, Peer{NodeID: "peer", Registered: true})

		var want json.RawMessage
		werr := json.NewDecoder(bytes.NewReader(in)).Decode(&want)
		if (werr == nil) != called {
			t.Fatalf("method called: %v; encoding/json reads %q as: %v", called, in, werr)
		}
		if !called {
			if conn.out.Len() != 0 {
				t.Fatalf("an answer to a request that was not read: %q", conn.out.Bytes())
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("method given %q, want %q", got, want)
		}
		if !bytes.HasPrefix(bytes.TrimLeft(in, " \t\r\n"), got) {
			t.Fatalf("method given %q, which does not start the input %q", got, in)
		}
		rd := bufio.NewReader(&conn.out)
		line, err := rd.ReadBytes('\n')
		if err != nil || rd.Buffered() != 0 {
			t.Fatalf("answer is not one line: %q (%v)", conn.out.String(), err)
		}
		var resp rpcResponse
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatalf("answer %q: %v", line, err)
		}
		switch {
		case string(got) == `"fail"`:
			if resp.Error != "asked to fail" || resp.Result != nil {
				t.Fatalf("answer to a failing call: %+v", resp)
			}
		case resp.Error != "":
			t.Fatalf("echo of %q failed: %q", got, resp.Error)
		default:
			// encoding/json writes a RawMessage compacted, with <, > and & escaped.
			var c, e bytes.Buffer
			if err := json.Compact(&c, got); err != nil {
				t.Fatal(err)
			}
			json.HTMLEscape(&e, c.Bytes())
			if !bytes.Equal(resp.Result, e.Bytes()) {
				t.Fatalf("echo of %q answered %q, want %q", got, resp.Result, e.Bytes())
			}
		}
	})
}

// TestRPCRefusesOversizeRequest: a request of a valid JSON value just longer than
// MaxRPCMessage is refused: the method does not run.
func TestRPCRefusesOversizeRequest(t *testing.T) {
	m := &Mesh{services: map[string]service{}, log: slog.New(slog.DiscardHandler), cfg: Config{NodeID: "self"}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	defer m.cancel()
	m.HandleRPC("echo", false, func(context.Context, Peer, json.RawMessage) (any, error) {
		t.Error("the method ran on an oversize request")
		return nil, nil
	})
	body := io.MultiReader(strings.NewReader(`"`), io.LimitReader(letters{}, MaxRPCMessage), strings.NewReader(`"`))
	conn := &streamConn{r: bytes.NewReader(nil)}
	m.services["rpc.echo"].h(m.ctx, readConn{conn, body}, Peer{NodeID: "peer", Registered: true})
	if conn.out.Len() != 0 {
		t.Fatalf("an oversize request was answered: %.100q", conn.out.Bytes())
	}
}

// letters reads as an endless run of 'a'.
type letters struct{}

func (letters) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// readConn reads from r instead of its conn.
type readConn struct {
	*streamConn
	r io.Reader
}

func (c readConn) Read(p []byte) (int, error) { return c.r.Read(p) }
